"""Whether the Hugging Face hub can be reached now: the one probe of every caller that would otherwise
wait on the hub client's download retries (timm's ImageNet weights, diffusers VAEs)."""

from __future__ import annotations

import threading
from urllib.parse import urlsplit

from fiagen.core.errors import first_line


def hub_unreachable() -> str | None:
    """Why the hub cannot be used now, or None when it answers.

    Asks the hub client itself: its offline mode (HF_HUB_OFFLINE, TRANSFORMERS_OFFLINE), then one HEAD
    request to its endpoint (HF_ENDPOINT) through its own configured session, so its proxy settings
    (HTTPS_PROXY, NO_PROXY) and its metadata timeout (HF_HUB_ETAG_TIMEOUT) apply. Any answer, whatever its
    status, means the hub is reachable. The request runs in a thread given the same timeout: a name lookup
    has no timeout of its own."""
    from huggingface_hub import constants, get_session

    if constants.HF_HUB_OFFLINE:
        return "HF_HUB_OFFLINE is set"
    endpoint, seconds = constants.ENDPOINT, float(constants.HF_HUB_ETAG_TIMEOUT)
    host = urlsplit(endpoint).hostname or endpoint
    outcome: list[str | None] = []

    def ask() -> None:
        try:
            get_session().head(endpoint, timeout=seconds)
            outcome.append(None)
        except Exception as err:  # noqa: BLE001 - any transport error of the client's HTTP library: the reason
            outcome.append(f"{host} cannot be reached: {first_line(err)}")

    thread = threading.Thread(target=ask, daemon=True)
    thread.start()
    thread.join(seconds + 0.5)
    return outcome[0] if outcome else f"{host} did not answer within {seconds:g} s"
