//! Who is signed in. The access token lives only here, in memory; the refresh token only in
//! the server's HttpOnly cookie. Provided to every component as context.

use api::{Role, wire::Profile};
use leptos::prelude::*;

#[derive(Clone, Copy)]
pub struct Session {
    /// The signed-in user's profile, `None` when signed out.
    pub user: RwSignal<Option<Profile>>,
    /// The access token, never written to any storage.
    pub token: RwSignal<Option<String>>,
    /// Whether the silent refresh at start-up has finished (guards wait for it).
    pub ready: RwSignal<bool>,
    /// The server asked for a recently proven second factor: the shell asks for one.
    pub step_up_needed: RwSignal<bool>,
}

impl Session {
    pub fn new() -> Self {
        Self {
            user: RwSignal::new(None),
            token: RwSignal::new(None),
            ready: RwSignal::new(false),
            step_up_needed: RwSignal::new(false),
        }
    }

    pub fn signed_in(&self) -> bool {
        self.user.with(Option::is_some)
    }

    pub fn has_role(&self, role: Role) -> bool {
        self.user.with(|user| {
            user.as_ref()
                .is_some_and(|u| u.roles.iter().any(|r| r == role.authority()))
        })
    }

    pub fn clear(&self) {
        self.token.set(None);
        self.user.set(None);
    }
}

pub fn use_session() -> Session {
    expect_context::<Session>()
}
