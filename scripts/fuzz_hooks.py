"""Schemathesis hooks for scripts/fuzz-api.sh.

The fuzzer drives the API with an administrator's token. Left alone, it
would soon delete, deactivate or demote that administrator (or revoke its
sessions), and every later case would stop at 401 or 403. Every path id
that names the administrator is sent as an id that exists nowhere instead;
every other id, valid or not, goes out as generated.
"""

import os

import schemathesis

ADMIN_ID = int(os.environ["SESSIOND_FUZZ_ADMIN_ID"])
ELSEWHERE = ADMIN_ID + 1_000_000_000


def _names_admin(value):
    try:
        return int(str(value).strip()) == ADMIN_ID
    except ValueError:
        return False


@schemathesis.hook
def before_call(context, case, kwargs):
    params = case.path_parameters
    if params and "id" in params and _names_admin(params["id"]):
        params["id"] = ELSEWHERE
