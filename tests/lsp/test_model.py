"""The server's model of a policy set, in process: the loader of `agp check` with the editor's
unsaved text as overlays, the names from the checker, the traces replayed and kept."""

import os

from agp.limits import MAX_POLICY_FILE_BYTES
from agp.loader import Loader, check_paths
from agp.lsp.occurrences import _Uses
from agp.lsp.project import Project, path_to_uri
from agp.lsp.traces import TraceRuns
from agp.syntax.visit import missing_cases


def _headlines(diagnostics) -> list[str]:
    return sorted(d.headline() for d in diagnostics)


def test_an_unsaved_buffer_is_held_to_the_size_limit_in_bytes(workspace):
    # Fewer characters than the limit, more UTF-8 bytes: `agp check` refuses the saved file, so
    # the server refuses the buffer, with the same diagnostic (it once counted characters).
    text = "# " + "é" * (MAX_POLICY_FILE_BYTES // 2) + "\n"
    assert len(text) < MAX_POLICY_FILE_BYTES < len(text.encode("utf-8"))
    path = workspace / "big.agp"
    path.write_text(text, encoding="utf-8")
    _, expected = check_paths([workspace])
    assert [d.code for d in expected] == ["limit"]
    uri = path_to_uri(path)
    analysis = Project([workspace]).analyze(uri, {uri: text})
    assert _headlines(analysis.by_uri()[uri]) == _headlines(expected)


def test_overlays_stand_in_for_the_disk_and_unsaved_files_count(workspace):
    support = workspace / "support.agp"
    unsaved = workspace / "a_new.agp"  # not on disk: listed in path order all the same
    overlays = {support: support.read_text(encoding="utf-8").replace("by support_bot, billing",
                                                                     "by support_bot, biling"),
                unsaved: "forbid night when nope\n"}
    loaded = Loader(overlays).load(workspace)
    assert [p.name for p in loaded.paths] == ["a_new.agp", "support.agp"]
    assert sorted((d.span.source.name, d.code) for d in loaded.diagnostics) == [
        (str(unsaved), "unknown-name"), (str(support), "unknown-agent")]
    assert check_paths([workspace])[1] == []  # the disk itself is clean


def test_names_come_from_the_checker(workspace):
    support = workspace / "support.agp"
    uri = path_to_uri(support)
    text = support.read_text(encoding="utf-8") + (
        "forbid shadowed when any(pii in data: pii == \"x\") and data <= pii\n")
    analysis = Project([workspace]).analyze(uri, {uri: text})
    names = analysis.occurrences
    source = analysis.file(uri).source
    start = text.index("forbid shadowed")
    used = [(o.kind, o.name, o.span.start - start) for o in names.in_file(source)
            if o.span.start > start and not o.declaration]
    # The quantifier's variable `pii` shadows the data class; the last `pii` is the class.
    assert used == [("class", "pii", text.index("<= pii", start) + 3 - start)]
    [decl] = names.targets(names.at(source, text.index("<= pii", start) + 3))
    assert decl.item is analysis.checked.symbols["pii"].decl
    assert {d.name for d in names.declared("task")} == {"support_ticket"}


def test_the_condition_walker_has_a_case_for_every_form_of_expression():
    assert missing_cases(_Uses) == []


def test_traces_are_replayed_once_per_policy_and_trace_file(workspace):
    policy = check_paths([workspace])[0]
    runs = TraceRuns()
    traces = sorted(workspace.rglob("*.jsonl"))
    assert runs.known(policy, workspace).missing == traces
    done = runs.replay(policy, workspace)
    assert done.missing == [] and done.tally.passed > 0
    assert runs.known(policy, workspace).tally == done.tally  # kept: nothing to replay
    # One trace changes: only it is to be replayed again.
    changed = traces[0]
    changed.write_text(changed.read_text(encoding="utf-8") + "\n", encoding="utf-8")
    os.utime(changed, ns=(0, 0))
    assert runs.known(policy, workspace).missing == [changed]
    # Another policy: every trace, once.
    support = workspace / "support.agp"
    support.write_text(support.read_text(encoding="utf-8") + "\n# edited\n", encoding="utf-8")
    other = check_paths([workspace])[0]
    assert other.hash != policy.hash
    assert runs.known(other, workspace).missing == traces
