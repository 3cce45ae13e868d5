"""The patch engines' error tree, translated once into a `Status` by the apiserver.

Every engine in this package raises only `PatchError` subclasses.  The class says which HTTP
answer the request deserves; `reason` is a short machine-readable cause (one of the constants
below) that the apiserver may put in `details.causes[].reason`; `message` is for humans.
"""

from __future__ import annotations

from typing import ClassVar

__all__ = [
    "ELEMENT_ORDER_MISMATCH",
    "INVALID_DIRECTIVE",
    "INVALID_OPERATION",
    "LIST_OF_LISTS",
    "MISSING_MERGE_KEY",
    "NOT_AN_OBJECT",
    "PATH_NOT_FOUND",
    "RETAIN_KEYS_MISMATCH",
    "TEST_FAILED",
    "TYPE_MISMATCH",
    "MalformedPatchError",
    "PatchApplyError",
    "PatchError",
    "PatchPathNotFoundError",
    "PatchTestFailedError",
]

NOT_AN_OBJECT = "NotAnObject"
INVALID_OPERATION = "InvalidOperation"
INVALID_DIRECTIVE = "InvalidDirective"
MISSING_MERGE_KEY = "MissingMergeKey"
ELEMENT_ORDER_MISMATCH = "ElementOrderMismatch"
RETAIN_KEYS_MISMATCH = "RetainKeysMismatch"
LIST_OF_LISTS = "ListOfLists"
TYPE_MISMATCH = "TypeMismatch"
PATH_NOT_FOUND = "PathNotFound"
TEST_FAILED = "TestFailed"


class PatchError(Exception):
    """A patch could not be applied.  Never raised itself, only through a subclass.

    `code` and `status_reason` are what the apiserver answers (`Status.code`, `Status.reason`).
    """

    code: ClassVar[int] = 422
    status_reason: ClassVar[str] = "Invalid"

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.reason!r}, {self.message!r})"


class MalformedPatchError(PatchError):
    """The patch document itself is wrong, whatever it is applied to: not a map (or not a list
    of operations), an unknown directive or operation, a list item without its merge key, a
    `$setElementOrder` list that contradicts its patch list.  HTTP 400 BadRequest."""

    code: ClassVar[int] = 400
    status_reason: ClassVar[str] = "BadRequest"


class PatchApplyError(PatchError):
    """A well-formed patch does not apply to this object: a path that is not there, a type the
    object does not have there, a live list item without its merge key.  HTTP 422 Invalid."""


class PatchPathNotFoundError(PatchApplyError):
    """A JSON patch operation names a path the document does not have."""


class PatchTestFailedError(PatchApplyError):
    """A JSON patch `test` operation found a different value (or none)."""
