"""Error handling shared by the job widgets: handlers run inside the widget's ``ipywidgets.Output`` and any
exception lands in the widget's ``error`` trait (shown in its error area) instead of being lost.

A widget using :func:`guarded` has an ``output`` (``ipywidgets.Output``), an ``error`` trait and the attributes
``_depth`` (nesting of guarded calls, 0 outside) and ``_in_message`` (True while a front-end message applies).
"""
from __future__ import annotations

import functools
import logging
import traceback
from typing import Any, Callable, TypeVar

__all__ = ["GuardedView", "guarded", "report_error"]

logger = logging.getLogger(__name__)

F = TypeVar("F", bound=Callable[..., Any])


def report_error(widget: Any, exc: BaseException, where: str) -> None:
    """Show ``exc`` in the widget's error area and its traceback in its Output."""
    widget.error = f"{type(exc).__name__}: {exc}"
    text = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    try:
        widget.output.append_stderr(text)
    except Exception:  # noqa: BLE001 - an Output without a front end may refuse; the error trait still holds it
        pass
    logger.debug("%s.%s failed:\n%s", type(widget).__name__, where, text)


def guarded(method: F) -> F:
    """Run a handler inside the widget's Output; show any exception in the error area (the outermost call of a
    handler clears the previous error first, unless a front-end message is being applied)."""

    @functools.wraps(method)
    def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
        if self._depth == 0 and not self._in_message:
            self.error = ""
        self._depth += 1
        try:
            with self.output:
                try:  # caught inside the Output: in a kernel, Output.__exit__ would print and swallow it
                    return method(self, *args, **kwargs)
                except Exception as exc:  # noqa: BLE001 - shown to the user, not swallowed
                    report_error(self, exc, method.__name__)
                    return None
        finally:
            self._depth -= 1

    return wrapper  # type: ignore[return-value]


class GuardedView:
    """Mixin for anywidget widgets that use :func:`guarded` (list it before ``anywidget.AnyWidget``): displays the
    widget with its Output (``view``: the widget and its Output in a box), and marks front-end messages so that a
    message's handlers show that message's errors only."""

    view: Any
    error: str
    _in_message: bool

    def _repr_mimebundle_(self, **kwargs: Any) -> Any:
        """Display the widget and its Output (tracebacks of failed handlers)."""
        return self.view._repr_mimebundle_(**kwargs)

    def set_state(self, sync_data: Any) -> None:
        """Apply a state message from the front end; the error area then shows this message's errors only."""
        self.error = ""
        self._in_message = True
        try:
            super().set_state(sync_data)  # type: ignore[misc]
        finally:
            self._in_message = False
