"""`--ae` / `--sr` values: parse `none | builtin | taef2 | sd-vae[:ID_OR_PATH] | taesd[:ID_OR_PATH]` (AE) and
`none | builtin | dat-light | realesrgan-x4plus | spandrel:FILE` (SR); syntax only, the package's
`resolve_spec` finds and hashes the weights."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from fiagen.core.errors import FiagenError

KINDS = ("ae", "sr")
FAMILIES = {"ae": ("none", "builtin", "taef2", "sd-vae", "taesd"),
            "sr": ("none", "builtin", "dat-light", "realesrgan-x4plus", "spandrel")}
SYNTAX = {"ae": "none, builtin, sd-vae[:FOLDER_OR_HUB_ID], taesd[:FOLDER_OR_HUB_ID_OR_CHECKPOINTS] or taef2",
          "sr": "none, builtin, dat-light, realesrgan-x4plus or spandrel:FILE"}
NO_TARGET = ("none", "builtin", "taef2", "dat-light", "realesrgan-x4plus")  # a bare name, nothing after it
NEEDS_TARGET = ("spandrel",)  # the others (sd-vae, taesd) take an optional target, else their default hub id
DEFAULT_TARGET = {"sd-vae": "stabilityai/sd-vae-ft-mse", "taesd": "madebyollin/taesd"}


class ReconstructorError(FiagenError):
    """A reconstructor that cannot be used as asked (bad spec, missing weights, hub out of reach)."""


@dataclass(frozen=True)
class ReconstructorSpec:
    """A parsed --ae/--sr value; after resolve_spec, `path` is the local weights, `digest` their sha256
    and `name` what the reconstructor id calls them (a hub id, or a file or folder name); `partner` is the
    decoder file of a TAESD-family checkpoint pair, whose `path` is the encoder file."""

    kind: str
    family: str
    target: str = ""
    path: str | None = None
    digest: str | None = None
    name: str | None = None
    partner: str | None = None

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
    family, colon, target = value.strip().partition(":")
    if (family not in FAMILIES[kind] or (colon and not target) or (family in NO_TARGET and target)
            or (family in NEEDS_TARGET and not target)):
        raise ReconstructorError(f"--{kind} {value!r}: expected {SYNTAX[kind]}")
    return ReconstructorSpec(kind, family, target)

