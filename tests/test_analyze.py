"""`agp analyze`: findings, comparisons and queries with the SMT solver (docs/analyze.md)."""

from __future__ import annotations

import json
import sys

import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_differential import policy_sets, request_values

from agp.analyze import analyze, compare, query
from agp.analyze import witness as witness_module
from agp.cli import main
from agp.engine import make_evaluator
from agp.loader import check_sources
from agp.source import Source

HEAD = """
dataclass public
dataclass secret > public
intent read, egress
tool crm.lookup { intent read }
tool http.get { intent egress }
task ticket { tools crm.*, http.get }
"""
OLD = HEAD + """
permit lookups on crm.lookup in ticket
permit fetch on http.get when args.url matches "https://*" and not (secret in data)
"""
NEW = HEAD + """
permit lookups on crm.lookup in ticket
permit fetch on http.get when args.url matches "https://*"
"""
RANK = {"deny": 0, "ask": 1, "allow": 2}


def policy(text: str):
    checked, diagnostics = check_sources([Source("p.agp", text)])
    assert checked is not None, diagnostics
    return checked


def findings(text: str) -> dict[str, str]:
    """rule name -> code of its finding."""
    report = analyze(policy(text), timeout=10)
    spans = {d.span.source.text[d.span.start:d.span.end]: d.code for d in report.diagnostics}
    return spans


def test_each_kind_of_finding_at_the_rule_name():
    found = findings(HEAD + """
forbid never on crm.lookup when 1 > 2
permit dead on http.get when args.x == 1
forbid no_x on http.get when args has x
permit out_of_scope on http.get in ticket when tool == "crm.lookup"
ask asked on crm.lookup when args has n
forbid all_lookups on crm.lookup
ask dup1 on http.get when args.n > 3
ask dup2 on http.get when 3 < args.n
permit fine on http.get when args has ok
""")
    assert found == {"never": "never-matches", "dead": "shadowed-permit",
                     "out_of_scope": "never-matches", "asked": "shadowed-ask",
                     "dup2": "equivalent-rule"}


def test_the_envelope_shadows_a_permit():
    found = findings(HEAD + "permit outside on http.get in ticket\n"
                     "task narrow { tools crm.* }\npermit narrow_fetch on http.get in narrow\n")
    assert found == {"narrow_fetch": "shadowed-permit"}


def test_a_clean_policy_has_no_findings_and_exits_0(tmp_path):
    (tmp_path / "p.agp").write_text(OLD)
    result = CliRunner().invoke(main, ["analyze", "-p", str(tmp_path / "p.agp")])
    assert result.exit_code == 0, result.output
    assert "0 finding(s)" in result.output


def test_findings_print_in_the_check_format_and_exit_1(tmp_path):
    (tmp_path / "p.agp").write_text(HEAD + "forbid never on crm.lookup when 1 > 2\n")
    result = CliRunner().invoke(main, ["analyze", "-p", str(tmp_path / "p.agp")])
    assert result.exit_code == 1
    assert "p.agp:8:8: warning[never-matches]: rule `never` can never match" in result.output


def decide_all(text: str, request: dict) -> list:
    p = policy(text)
    return [make_evaluator(p, compiled).decide(request).to_json() for compiled in (False, True)]


def test_compare_finds_confirmed_differences_with_eval_ready_requests(tmp_path):
    (tmp_path / "old.agp").write_text(OLD)
    (tmp_path / "new.agp").write_text(NEW)
    runner = CliRunner()
    result = runner.invoke(main, ["analyze", "--compare", "-p", str(tmp_path / "old.agp"),
                                  "-p", str(tmp_path / "new.agp"), "--format", "json"])
    assert result.exit_code == 1, result.output
    out = json.loads(result.stdout)
    assert out["differences"]
    for d in out["differences"]:
        assert set(d) == {"direction", "request", "old", "new"}
        assert d["direction"] == "new-allows"
        assert d["request"]["tool"] == "http.get" and "secret" in d["request"]["data"]
        (tmp_path / "r.json").write_text(json.dumps(d["request"]))
        for path, expected in (("old.agp", d["old"]), ("new.agp", d["new"])):
            evaluated = runner.invoke(main, ["eval", "-p", str(tmp_path / path),
                                             str(tmp_path / "r.json")])
            assert evaluated.exit_code == 0, evaluated.output
            assert json.loads(evaluated.stdout)["decision"] == expected["decision"]
    assert out["proved"] == {"new-allows": True, "new-denies": True}


def test_assert_no_new_allows_exit_codes(tmp_path):
    (tmp_path / "old.agp").write_text(OLD)
    (tmp_path / "new.agp").write_text(NEW)
    old, new = str(tmp_path / "old.agp"), str(tmp_path / "new.agp")
    runner = CliRunner()
    assert runner.invoke(main, ["analyze", "--compare", "-p", old, "-p", new,
                                "--assert", "no-new-allows"]).exit_code == 1
    # tightening is not a new allow: the reverse comparison proves none
    result = runner.invoke(main, ["analyze", "--compare", "-p", new, "-p", old,
                                  "--assert", "no-new-allows"])
    assert result.exit_code == 0, result.output
    assert "new-allows: none (proved)" in result.output


def test_a_class_only_new_declares_is_a_new_allow():
    old = policy(HEAD + "permit any_lookup on crm.lookup\n")
    new = policy(HEAD + "dataclass extra\npermit any_lookup on crm.lookup\n")
    result = compare(old, new, timeout=10)
    allows = [d for d in result.differences if d.direction == "new-allows"]
    assert allows and all("extra" in d.request["data"] for d in allows)
    assert allows[0].old.rules == ["request.unknown"]


def test_approximations_are_reported_and_witnesses_still_confirmed():
    text = HEAD + "permit short on http.get when len(args.s) < 3\n"
    p = policy(text)
    report = analyze(p, timeout=10)
    assert "the function `len`" in [a.reason for a in report.approximations]
    answer = query(p, "on http.get", "allow", timeout=10)
    assert answer.approximations
    if answer.request is None:  # the over-approximation gave only spurious models
        assert answer.search is not None and not answer.search.proved
    else:
        assert all(d["decision"] == "allow" for d in decide_all(text, answer.request))


def test_a_spurious_witness_is_never_shown(monkeypatch):
    # Every model the solver finds is made unconfirmable: nothing may be reported, and the
    # search says it is not a proof.
    monkeypatch.setattr(witness_module, "decide_both", lambda judges, request: witness_module
                        .Decided(None, *(j.decide(request) for j in judges)))
    compare_module = sys.modules["agp.analyze.compare"]
    monkeypatch.setattr(compare_module, "decide_both", witness_module.decide_both)
    result = compare(policy(OLD), policy(NEW), timeout=10)
    assert result.differences == []
    assert not result.searches["new-allows"].proved
    assert result.searches["new-allows"].unconfirmed >= 1


def test_solver_timeouts_are_reported_never_taken_for_answers(monkeypatch, tmp_path):
    monkeypatch.setattr(witness_module.Solver, "check", lambda self, *facts, **kw: "unknown")
    report = analyze(policy(HEAD + "permit p on crm.lookup\n"), timeout=1)
    assert [d.code for d in report.diagnostics] == ["analysis-timeout"]
    result = compare(policy(OLD), policy(NEW), timeout=1)
    assert result.differences == [] and result.searches["new-allows"].timed_out
    assert not result.proved_none("new-allows")
    (tmp_path / "old.agp").write_text(OLD)
    cli = CliRunner().invoke(main, ["analyze", "--compare", "-p", str(tmp_path / "old.agp"),
                                    "-p", str(tmp_path / "old.agp"), "--assert",
                                    "no-new-allows", "--timeout", "1"])
    assert cli.exit_code == 1
    assert "ran out of time" in cli.output


def test_query_witness_and_proof_of_absence(tmp_path):
    (tmp_path / "p.agp").write_text(OLD)
    runner = CliRunner()
    found = runner.invoke(main, ["analyze", "-p", str(tmp_path / "p.agp"), "--query",
                                 "on http.get when target has host", "--format", "json"])
    assert found.exit_code == 1, found.output
    out = json.loads(found.stdout)
    assert out["answer"] == "witness" and out["decision"]["decision"] == "allow"
    assert "host" in out["request"]["target"]
    none = runner.invoke(main, ["analyze", "-p", str(tmp_path / "p.agp"), "--query",
                                "on http.get when data >= secret"])
    assert none.exit_code == 0, none.output
    assert "none: no request decided allow" in none.output


def test_query_absence_is_proved(tmp_path):
    p = policy(OLD)
    answer = query(p, 'tool == "http.get" and secret in data', "allow", timeout=10)
    assert answer.request is None and answer.search is not None and answer.search.proved


@pytest.mark.parametrize("args", [
    ["analyze", "-p", "missing.agp"],
    ["analyze", "--compare", "-p", "a.agp"],
    ["analyze", "-p", "a.agp", "--assert", "no-new-allows"],
    ["analyze", "-p", "a.agp", "--query", "args.x >"],
    ["analyze", "-p", "a.agp", "--query", "nosuchname"],
])
def test_user_mistakes_exit_2_without_traceback(tmp_path, monkeypatch, args):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "a.agp").write_text(OLD)
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output and result.exception is None or \
        isinstance(result.exception, SystemExit)


SMALL = settings(max_examples=6, deadline=None, derandomize=True,
                 suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])


@SMALL
@given(policy_sets(), policy_sets(), st.lists(request_values(), min_size=10, max_size=10))
def test_generated_pairs_counterexamples_reproduce_and_proofs_hold(old_text, new_text,
                                                                    requests):
    old, new = check_sources([Source("old.agp", old_text)])[0], \
        check_sources([Source("new.agp", new_text)])[0]
    if old is None or new is None:
        return
    result = compare(old, new, timeout=3, limit=3)
    for d in result.differences:
        o = [make_evaluator(old, c).decide(d.request).decision for c in (False, True)]
        n = [make_evaluator(new, c).decide(d.request).decision for c in (False, True)]
        assert o[0] == o[1] and n[0] == n[1]
        assert (RANK[n[0]] > RANK[o[0]]) == (d.direction == "new-allows")
        assert RANK[n[0]] != RANK[o[0]]
    # "no difference, proved" must agree with deciding random requests under both
    if result.proved_none("new-allows") and result.proved_none("new-denies"):
        for request in requests:
            # long chains, sessions and identities are inside the proof: only hop scopes are
            # outside (agp.analyze.Bounds), and SVIDs, which need a trust to verify
            if any(h.get("scope") for h in request.get("chain", [])) \
                    or "svid" in request["agent"]:
                continue
            a = make_evaluator(old, False).decide(request).decision
            b = make_evaluator(new, False).decide(request).decision
            assert a == b, request


# ---- soundness: no bound of the encoding is a bound of the proofs ------------------------------


def test_a_deep_chain_is_never_proved_impossible():
    # The chain's first hops are encoded one by one; deeper chains are still in the space.
    found = findings(HEAD + """
forbid deep on crm.lookup when chain.depth > 10
ask very_deep on http.get when chain.depth >= 40
task long { tools http.get  delegate { to helper  depth <= 30 } }
agent helper "helper-*"
permit delegated on http.get in long when chain.depth > 25
""")
    assert found == {}
    answer = query(policy(HEAD + "permit deep on http.get when chain.depth > 10\n"),
                   "chain.depth > 10", timeout=10)
    assert answer.request is not None and len(answer.request["chain"]) == 12
    assert all(d["decision"] == "allow" for d in decide_all(
        HEAD + "permit deep on http.get when chain.depth > 10\n", answer.request))


def test_a_depth_beyond_any_chain_is_proved_impossible():
    # a request's lists hold at most MAX_LIST_LENGTH items: this bound is the language's own
    assert findings(HEAD + "forbid f on http.get when chain.depth > 20000\n") == \
        {"f": "never-matches"}


def test_list_history_and_session_lengths_are_never_bounded():
    found = findings(HEAD + """
forbid long_list on http.get when args has items and len(args.items) > 5000
forbid long_history on http.get in ticket when len(task.history) >= 10000
forbid busy on crm.lookup in ticket when count(h in task.history: h.decision == "allow") >= 50
forbid many_classes on http.get when len(data) > 2
forbid many_seen on crm.lookup in ticket when len(task.seen) > 2
""")
    assert found == {}
    report = analyze(policy(HEAD + "forbid f on http.get in ticket when len(task.history) > 9\n"))
    assert any("task.history" in a.reason for a in report.approximations)


def test_task_ages_are_unbounded_and_starts_may_be_later_than_now():
    # `task.age` is `now - started_at` however long (only arithmetic is bounded), and a task
    # started later than `now` is request.invalid, but its rules still run (a forbid matches).
    text = "task t {}\npermit old on x when task.age > 36500d\n" \
           "forbid future on y when task.age < 0s\n"
    assert findings(text) == {}
    answer = query(policy(text), "on x", timeout=10)
    assert answer.request is not None and all(
        d["decision"] == "allow" for d in decide_all(text, answer.request))


def test_an_undeclared_class_makes_a_lattice_comparison_fail():
    # `data <= secret` fails on a class the set does not declare: the forbid then matches
    assert findings(HEAD + "forbid odd on http.get when not (data <= secret)\n") == {}


# ---- sessions and identity ----------------------------------------------------------------------


def test_task_seen_is_encoded_exactly_with_the_lattice():
    found = findings(HEAD + """
permit tainted on crm.lookup in ticket when task.seen >= secret
permit clean on crm.lookup in ticket when task.seen <= public and secret in task.seen
permit counted on crm.lookup in ticket when len(task.seen) > 2
permit no_task on crm.lookup when not (task has kind) and task.seen >= public
""")
    # `counted` needs an undeclared class: it matches, but request.unknown always denies it
    assert found == {"clean": "never-matches", "counted": "shadowed-permit",
                     "no_task": "never-matches"}
    text = HEAD + "permit tainted on crm.lookup in ticket when task.seen >= secret\n"
    answer = query(policy(text), "on crm.lookup", timeout=10)
    assert answer.request is not None and "secret" in answer.request["task"]["seen"]
    assert all(d["decision"] == "allow" for d in decide_all(text, answer.request))


def test_a_class_seen_that_old_does_not_declare_is_a_new_allow():
    # Through `data` both deny (OLD: request.unknown, NEW: the forbid): only the session shows
    # that NEW allows a task that has seen `extra`.
    old = policy(HEAD + "permit lookups on crm.lookup in ticket\n")
    new = policy(HEAD + "dataclass extra\npermit lookups on crm.lookup in ticket\n"
                 "forbid no_extra on crm.lookup when extra in data\n")
    result = compare(old, new, timeout=10, directions=("new-allows",))
    assert result.differences
    assert all("extra" in d.request["task"]["seen"] for d in result.differences)
    assert result.differences[0].old.rules == ["request.unknown"]


def test_agent_verified_is_a_free_boolean():
    # The identity check is the engine's: under a trust, a verified agent exists.
    found = findings(HEAD + """
permit verified on crm.lookup when agent.verified
forbid unverified on http.get when not agent.verified
permit fetch on http.get
permit never on crm.lookup when agent.verified and not agent.verified
permit present on crm.lookup when agent has verified
""")
    assert found == {"never": "never-matches"}


def test_a_difference_only_deep_chains_show_is_found_never_proved_absent():
    # Before the chain was unbounded, this comparison "proved" that NEW allows nothing more.
    old = policy(HEAD + "permit fetch on http.get\nforbid deep on http.get when chain.depth > 10\n")
    new = policy(HEAD + "permit fetch on http.get\n")
    result = compare(old, new, timeout=10, directions=("new-allows",))
    assert not result.proved_none("new-allows")
    assert result.differences and all(len(d.request["chain"]) >= 12
                                       for d in result.differences)
    assert result.differences[0].old.rules == ["deep"]


# ---- the shortcuts of the big sets keep every answer (docs/analyze.md, Speed) ------------------


def test_rules_of_one_tool_equivalent_only_when_they_match_alike():
    # Forbids of one tool and one shape, different thresholds: each witness matches several,
    # so only the solver (and the models of its differences) tells them apart; the duplicate
    # (one formula) and the reworded one are equivalent, the others are not.
    found = findings(HEAD + """
forbid over10 on http.get when args has n and args.n > 10
forbid over20 on http.get when args has n and args.n > 20
forbid over30 on http.get when args has n and args.n > 30
forbid over40 on http.get when args has n and args.n > 40
forbid again10 on http.get when args has n and args.n > 10
forbid reworded30 on http.get when args has n and 30 < args.n
permit lookups on crm.lookup in ticket
""")
    assert found == {"again10": "equivalent-rule", "reworded30": "equivalent-rule"}


def test_a_witness_needs_no_chain_but_one_for_a_deep_forbid_is_still_found():
    # `fine` reads no chain, but a forbid near it does: its witness without a chain is found;
    # the forbid needs a chain of 5 hops and is not dead either.
    assert findings(HEAD + """
permit fine on http.get when args has n
forbid deep on http.get when chain.depth > 3
ask asked on http.get when chain.depth > 1 and args has n
""") == {}


def test_witness_strings_outside_ascii_are_kept_when_the_rule_needs_them():
    # The readable model (printable ASCII) cannot be had: the solver's own is kept.
    text = HEAD + 'permit p on http.get when args.s == "été"\n'
    answer = query(policy(text), "on http.get", timeout=10)
    assert answer.request is not None and answer.request["args"]["s"] == "été"
    assert all(d["decision"] == "allow" for d in decide_all(text, answer.request))


def test_an_agent_id_is_named_when_no_rule_reads_it_and_fits_when_one_does():
    plain = query(policy(OLD), "on crm.lookup", timeout=10)
    assert plain.request is not None and plain.request["agent"]["id"] == "agent"
    text = HEAD + 'agent ops "ops-*"\npermit p on http.get by ops\n'
    answer = query(policy(text), "on http.get", timeout=10)
    assert answer.request is not None and answer.request["agent"]["id"].startswith("ops-")
    assert all(d["decision"] == "allow" for d in decide_all(text, answer.request))


@SMALL
@given(policy_sets(), st.lists(request_values(), min_size=20, max_size=20))
def test_findings_agree_with_deciding_random_requests(text, requests):
    # A finding is a proof of absence: no request may contradict it in the reference evaluator.
    from agp import interp
    from agp.model import RequestError, parse_request

    checked = check_sources([Source("p.agp", text)])[0]
    if checked is None:
        return
    report = analyze(checked, timeout=3)
    rules = {r.name: r for r in checked.rules}
    requests = [r for r in requests if not any(h.get("scope") for h in r.get("chain", []))
                and "svid" not in r["agent"]]

    def matches(name: str, request: dict) -> bool:
        try:
            call = interp.resolve(checked, parse_request(request))
        except RequestError:  # request.invalid: no rule runs
            return False
        rule = rules[name]
        return interp.in_scope(checked, rule, call) and \
            interp.rule_matches(checked, rule, call.env)[0]

    for d in report.diagnostics:
        name = d.span.source.text[d.span.start:d.span.end]
        for request in requests:
            if d.code == "never-matches":
                assert not matches(name, request), (name, request)
            elif d.code.startswith("shadowed-"):
                assert name not in interp.decide(checked, request).rules, (name, request)
            elif d.code == "equivalent-rule":
                other = d.related[0].message.split("`")[1]
                assert matches(name, request) == matches(other, request), (name, request)
