"""Exit-code handling shared by the Hydra entry points."""

from __future__ import annotations

import sys
from collections.abc import Callable

USER_ERROR = 2


def call_hydra_main(
    main: Callable[[], object], task_started: Callable[[], bool]
) -> None:
    """Call a Hydra main and turn a composition error into exit code 2.

    Hydra exits with 1 both for an invalid override and for a crash inside the task.
    ``task_started`` tells them apart: an exit before the task ran is a user error.
    """
    try:
        main()
    except SystemExit as exit_:
        if exit_.code == 1 and not task_started():
            sys.exit(USER_ERROR)
        raise
