"""Schemathesis hooks for tests/api/openapi.rs: keep the run's admin session alive.

The run authenticates every request as one admin (`-H Authorization`). An admin's changes to
the admin's own account (roles, password, disabling, ending sessions, ...) would end that
session and leave the rest of the run testing only 401s, so they are aimed at another user id
instead. (Signing out is tested in a run of its own.)
"""

import os

import schemathesis

ADMIN_ID = os.environ["TOLLGATE_ADMIN_ID"]


@schemathesis.hook
def before_call(context, case, **kwargs):
    if case.path_parameters and str(case.path_parameters.get("id")) == ADMIN_ID:
        case.path_parameters["id"] = int(ADMIN_ID) + 1
