"""The errors and warnings of labelling sessions."""

from __future__ import annotations

__all__ = ["SessionBusyError", "SessionError", "SessionWarning"]


class SessionError(ValueError):
    """A labelling session cannot do what was asked; the message says what to do.

    Examples
    --------
    >>> from sid4ds.session import LabelingSession, SessionError
    >>> try:
    ...     LabelingSession.open("no-such-session-folder")
    ... except SessionError as error:
    ...     print(type(error).__name__)
    SessionError
    """


class SessionBusyError(SessionError):
    """Another command holds the session's lock.

    Raised instead of waiting, so two commands never change a session at once; the CLI
    exits with code 3. It is a :class:`SessionError`, so one ``except`` catches both.

    Examples
    --------
    >>> from sid4ds.session import SessionBusyError, SessionError
    >>> issubclass(SessionBusyError, SessionError)
    True
    """


class SessionWarning(UserWarning):
    """Something a session command noticed and handled (e.g. a stale lock it removed)."""

