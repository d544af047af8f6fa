"""What `fiagen evaluate` and `fiagen bench` print: each suite's stamp, table, counts and notes."""

from __future__ import annotations

from fiagen.evaluate.config import UNLISTED_SHOWN, BenchResult, SuiteResult
from fiagen.evaluate.scoring import NO_FACE_SCORE


def render(result: SuiteResult) -> str:
    """What the CLI prints for one suite: stamp, per-method table, counts, notes, output paths."""
    from fiagen.evaluate.tables import markdown, small_sample_note, stamp_line

    rep = result.report
    raw = rep["conditions"]["raw"]
    note = small_sample_note(result.table)
    lines = [f"## {result.name}", stamp_line(result.stamp), "", markdown(result.table), *([note] if note else []), ""]
    if result.robustness is not None:
        lines += ["R_AUC (AUC under perturbation vs raw):", "", markdown(result.robustness), ""]
    if "pseudo" in rep:
        pseudo = rep["pseudo"]
        lines.append(f"{result.name}: {pseudo['frames']} {pseudo['split']} frames and their {pseudo['recipe']} "
                     f"pseudo-fakes, {raw['videos']} crops scored ({raw['videos_scored_now']} now, "
                     f"{raw['videos_reused']} reused) -> {result.folder}")
    else:
        lines.append(f"{result.name}: {raw['videos']} videos scored ({raw['videos_scored_now']} now, "
                     f"{raw['videos_reused']} reused), {rep['items_missing']} missing, {raw['videos_no_face']} "
                     f"without a face (scored {NO_FACE_SCORE}), {raw['videos_failed']} failed -> {result.folder}")
    if rep.get("items_unlisted"):
        lines.append(f"{result.name}: {rep['items_unlisted']} media files under its folders are not in its list and "
                     f"were not scored (first: {', '.join(rep['unlisted'][:UNLISTED_SHOWN[1]])}; see report.json "
                     f"'unlisted')")
    if raw.get("videos_short"):
        lines.append(f"{result.name}: {raw['videos_short']} videos end before the frame count of their container "
                     f"and were scored from the frames that decode (see report.json 'short')")
    lines += [f"note: {n}" for n in rep["notes"][:20]]
    return "\n".join(lines)


def render_bench(result: BenchResult) -> str:
    """Every suite's block, the skipped and failed suites, and the summary table when there are several suites."""
    from fiagen.evaluate.tables import markdown

    blocks = [render(r) for r in result.suites]
    blocks += [f"skipped {name}: {reason}" for name, reason in result.skipped.items()]
    blocks += [f"failed {name}: {reason.removeprefix(f'{name}: ')}" for name, reason in result.failed.items()]
    if result.summary is not None and len(result.suites) > 1:
        blocks.append("## summary (`all` row of each suite)\n\n" + markdown(result.summary) +
                      f"\n\n-> {result.out / 'bench.csv'}")
    return "\n\n".join(blocks)
