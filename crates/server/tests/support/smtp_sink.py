#!/usr/bin/env python3
"""A real SMTP server on loopback for Tollgate's tests (aiosmtpd).

Usage: smtp_sink.py PORT DIRECTORY

Every message accepted becomes DIRECTORY/<n>.json: {"to", "from", "subject", "text", "html"},
decoded by Python's email package. Recipients at refuse.example are refused for good (550),
those at later.example for now (451). Prints "ready" once listening; stops when stdin closes
(that is, when the test that started it ends).
"""
import email
import email.policy
import itertools
import json
import os
import sys

from aiosmtpd.controller import Controller


class Sink:
    def __init__(self, directory):
        self.directory = directory
        self.counter = itertools.count(1)

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if address.endswith("@refuse.example"):
            return "550 5.1.1 No such mailbox here"
        if address.endswith("@later.example"):
            return "451 4.3.0 Try again later"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        text = message.get_body(("plain",))
        html = message.get_body(("html",))
        record = {
            "to": envelope.rcpt_tos,
            "from": envelope.mail_from,
            "subject": str(message["subject"]),
            "text": text.get_content() if text is not None else "",
            "html": html.get_content() if html is not None else "",
        }
        path = os.path.join(self.directory, "%06d.json" % next(self.counter))
        with open(path + ".tmp", "w", encoding="utf-8") as out:
            json.dump(record, out)
        os.rename(path + ".tmp", path)
        return "250 Message accepted"


def main():
    port, directory = int(sys.argv[1]), sys.argv[2]
    controller = Controller(Sink(directory), hostname="127.0.0.1", port=port)
    controller.start()
    print("ready", flush=True)
    sys.stdin.read()
    controller.stop()


if __name__ == "__main__":
    main()
