"""PostConfirmation: put a newly confirmed user in the default group.

Environment:

- `DEFAULT_GROUP`: the group every user joins when their sign-up is confirmed
  (`PostConfirmation_ConfirmSignUp`); nothing is done when unset or empty, and
  never on `PostConfirmation_ConfirmForgotPassword`.

The function's role needs `cognito-idp:AdminAddUserToGroup` on the pool.
"""

from __future__ import annotations

import os
from typing import Any

from identity_triggers._config import cognito as _cognito

DEFAULT_GROUP = "DEFAULT_GROUP"


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Add the confirmed user to DEFAULT_GROUP."""
    group = os.environ.get(DEFAULT_GROUP, "").strip()
    if group and event.get("triggerSource") == "PostConfirmation_ConfirmSignUp":
        client = _cognito(str(event["region"]))
        client.admin_add_user_to_group(
            UserPoolId=event["userPoolId"], Username=event["userName"], GroupName=group
        )
    return event
