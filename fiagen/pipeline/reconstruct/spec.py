"""`--ae` / `--sr` values: parse `none | builtin | sd-vae:ID_OR_PATH | spandrel:FILE` (syntax only; the
package's `resolve_spec` finds and hashes the weights)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from fiagen.errors import FiagenError

KINDS = ("ae", "sr")
FAMILIES = {"ae": ("none", "builtin", "sd-vae"), "sr": ("none", "builtin", "spandrel")}
SYNTAX = {"ae": "none, builtin or sd-vae:FOLDER_OR_HUB_ID", "sr": "none, builtin or spandrel:FILE"}


class ReconstructorError(FiagenError):
    """A reconstructor that cannot be used as asked (bad spec, missing weights, hub out of reach)."""


@dataclass(frozen=True)
class ReconstructorSpec:
    """A parsed --ae/--sr value; after resolve_spec, `path` is the local weights, `digest` their sha256
    and `name` what the reconstructor id calls them (a hub id, or a file or folder name)."""

    kind: str
    family: str
    target: str = ""
    path: str | None = None
    digest: str | None = None
    name: str | None = None

    @property
    def text(self) -> str:
        """The value as the user wrote it."""
        return f"{self.family}:{self.target}" if self.target else self.family

    @property
    def enabled(self) -> bool:
        return self.family != "none"

    def fingerprint(self) -> dict[str, Any]:
        """What decides this reconstructor's output, for the precompute config fingerprint."""
        out: dict[str, Any] = {"spec": self.text}
        if self.digest:
            out["weights_sha256"] = self.digest
        return out


def parse_spec(value: str, kind: str) -> ReconstructorSpec:
    """Syntax only: split `family:target` and check the family suits the kind (ae or sr)."""
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    family, _, target = value.strip().partition(":")
    if family not in FAMILIES[kind] or (family in ("none", "builtin")) == bool(target):
        raise ReconstructorError(f"--{kind} {value!r}: expected {SYNTAX[kind]}")
    return ReconstructorSpec(kind, family, target)

