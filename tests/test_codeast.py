"""The code-ast rewriter keeps behaviour, and the differential check tells when a rewrite does not.

Fast tier: rewrites of small programs of our own (trusted snippets, run in-process) compared with their
originals on inputs; the run breaker; the inputs the differential check builds. Slow tier (the sandbox): the
differential check itself and the code-ast backend's fallback.
"""

import ast
import copy

import pytest

from rephraser.rephrase.codeast.differential import Case, DifferentialChecker
from rephraser.rephrase.codeast.inputs import build_inputs, literal_calls, render, tolerance
from rephraser.rephrase.codeast.rewrite import break_runs, rewrite_program
from rephraser.rephrase.codeast.runbreak import _pass_before
from rephraser.rephrase.codeast.scope import Unsupported
from rephraser.sandbox import ExecutionNotAllowed


def outcomes(source: str, entry: str, inputs: list) -> list:
    """What `entry` of `source` returns (repr) or raises (type) for each input: a tuple of args or (args, kwargs)."""
    namespace: dict = {}
    exec(compile(source, "<snippet>", "exec"), namespace)
    out = []
    for given in inputs:
        args, kwargs = given if isinstance(given, list) else (given, {})
        try:
            out.append(("returned", repr(namespace[entry](*copy.deepcopy(args), **copy.deepcopy(kwargs)))))
        except Exception as e:
            out.append(("raised", type(e).__name__))
    return out


def entry_of(source: str) -> str:
    return next(n.name for n in ast.parse(source).body if isinstance(n, ast.FunctionDef))


def check_same(source: str, inputs: list, variant: int = 0, entry: str | None = None):
    entry = entry or entry_of(source)
    rewrite = rewrite_program(source, variant)
    new_entry = rewrite.renamed.get(entry, entry)
    assert outcomes(rewrite.text, new_entry, inputs) == outcomes(source, entry, inputs), rewrite.text
    return rewrite


# --- the five defects of issue 19 item 33 ---------------------------------------------------------------------


def test_match_captures_follow_the_local_they_bind():
    source = """
def f(x):
    y = 0
    match x:
        case [y]:
            return y * 10
        case {"k": y, **rest}:
            return y, rest
    return y
"""
    rewrite = check_same(source, [([5],), ({"k": 2, "z": 3},), (7,), ([1, 2],)])
    assert "case [yval]" in rewrite.text  # renamed with the local, not left behind


def test_a_loop_bound_that_reads_the_target_reads_it_before_the_loop():
    source = """
def f(n):
    total = 0
    for n in range(1, n + 1):
        total += n
    return total
"""
    rewrite = check_same(source, [(k,) for k in range(-1, 7)])
    assert "while" in rewrite.text  # converted, and right


def test_a_method_named_like_a_top_level_function_keeps_its_name():
    source = """
def area(r):
    return Box(r).area() + r

class Box:
    def __init__(self, r):
        self.r = r
    def area(self):
        return self.r * 2
"""
    rewrite = check_same(source, [(1,), (2.5,)])
    assert rewrite.renamed["area"] != "area" and "def area(self)" in rewrite.text


def test_break_runs_never_puts_pass_inside_a_docstring():
    digits = " ".join(str(11 * k) for k in range(1, 17))
    source = f'''
def describe(x):
    """Zorblax quuxes frobnicate wibbles snarf glorp blatt fnord wuzzle kazoo {digits}."""
    return x, describe.__doc__
'''
    rewrite = rewrite_program(source)
    broken = break_runs(source, rewrite.text, 10)
    entry = rewrite.renamed["describe"]
    assert outcomes(broken, entry, [(1,)]) == outcomes(rewrite.text, entry, [(1,)])
    assert "pass\n    33" not in broken


def test_a_pass_is_only_ever_added_as_a_statement():
    source = """def f(x):
    \"\"\"Doc line one
    doc line two.\"\"\"
    text = \"\"\"a
b\"\"\"
    return x, text
"""

    def without_pass(text):
        tree = ast.parse(text)
        for node in ast.walk(tree):
            if isinstance(getattr(node, "body", None), list):
                node.body = [s for s in node.body if not isinstance(s, ast.Pass)]
        return ast.dump(tree)

    added = [c for line in range(7) if (c := _pass_before(source, line)) is not None]
    assert len(added) == 3  # before `def`, `text = ...` and `return ...`: never inside the docstring or the string
    for candidate in added:
        assert without_pass(candidate) == without_pass(source)
        function = next(n for n in ast.parse(candidate).body if isinstance(n, ast.FunctionDef))
        assert ast.get_docstring(function, clean=False) == "Doc line one\n    doc line two."


def test_docstrings_that_are_not_rewritten_keep_their_value():
    source = '''
class Box:
    """
    A box.
    """
    def size(self):
        """The size.

        In units."""
        return 1

def make():
    """Make a box."""
    return Box.__doc__, Box.size.__doc__
'''
    check_same(source, [()], entry="make")


def test_while_conversion_keeps_range_errors_for_non_int_bounds():
    source = """
def f(n):
    out = []
    for i in range(n):
        out.append(i)
    return out
"""
    rewrite = check_same(source, [(2.5,), ("3",), (None,), (3,), (True,), (-2,)])
    assert "while" in rewrite.text


# --- more of the same class -----------------------------------------------------------------------------------

CASES = {
    "keyword call of a nested function": (
        """
def area(width, height):
    def scale(value, factor=1):
        return value * factor
    return scale(width, factor=height)
""",
        [(2, 3), (0, 5)],
    ),
    "a stored lambda called by keyword": (
        """
def apply(x):
    g = lambda value: value * 2
    return g(value=x)
""",
        [(4,), ("ab",)],
    ),
    "a key= lambda": ("\ndef f(xs, k):\n    return sorted(xs, key=lambda k: -k)[:k]\n", [([3, 1, 2], 2)]),
    "positional-only parameter and **kwargs": (
        """
def pick(a, /, **options):
    return a, sorted(options.items())

def use(x):
    return pick(x, a=5)
""",
        [(1,)],
    ),
    "keyword-only, *args and **kwargs": (
        """
def total(*values, scale=1, **extra):
    return sum(values) * scale + len(extra)

def run(n):
    return total(n, n, scale=3, bonus=1)
""",
        [(2,)],
    ),
    "a new parameter name never meets a keyword already passed": (
        """
def run(v):
    return f(v, xval=1)

def f(x, **extra):
    return x, sorted(extra)
""",
        [(2,)],
    ),
    "a call with ** keeps the callee's parameters": (
        """
def run(x):
    return scale(**{"value": x, "factor": 3})

def scale(value, factor):
    return value * factor
""",
        [(2,)],
    ),
    "a parameter named like a top-level function, passed by keyword": (
        """
def main(xs):
    return run(xs, sort=sum)

def sort(xs):
    return sorted(xs)

def run(xs, sort=None):
    return (sort or len)(xs)
""",
        [([1, 2, 3],)],
    ),
    "default value refers to a local": (
        """
def make(n):
    def inner(x, base=n):
        return x + base
    return inner(1)
""",
        [(3,)],
    ),
    "closure and nonlocal": (
        """
def counter(n):
    total = 0
    def bump(step):
        nonlocal total
        total += step
    for i in range(n):
        bump(i)
    return total
""",
        [(4,), (0,)],
    ),
    "global": ("\ncalls = 0\ndef tick(n):\n    global calls\n    calls += n\n    return calls\n", [(1,), (2,)]),
    "method of a class in a function, named like the function": (
        """
def count(items):
    class Box:
        def __init__(self, items):
            self.items = items
        def count(self):
            return len(self.items)
    return Box(items).count() + len(items)
""",
        [([1, 2],)],
    ),
    "class attributes are not renamed": (
        """
def sized(n):
    class Holder:
        size = n * 2
    return Holder.size
""",
        [(3,)],
    ),
    "f-string with =": ('\ndef show(value):\n    return f"{value=} {value!r:>6}"\n', [(3,), ("x",)]),
    "walrus in a comprehension": (
        "\ndef big(xs):\n    found = [y for x in xs if (y := x * 2) > 4]\n    return found, y\n",
        [([1, 3, 5],)],
    ),
    "match star and mapping rest": (
        """
def f(data):
    rest = None
    match data:
        case {"a": first, **rest}:
            return first, rest
        case [first, *rest]:
            return first, rest
    return rest
""",
        [({"a": 1, "b": 2},), ([1, 2, 3],), (5,)],
    ),
    "del of the loop target": (
        """
def f(n):
    out = []
    for i in range(n):
        out.append(i)
        del i
    return out
""",
        [(3,)],
    ),
    "except-as rebinds the loop target": (
        """
def f(n):
    out = []
    for e in range(n):
        try:
            out.append(10 // (e - 1))
        except ZeroDivisionError as e:
            out.append(None)
    return out
""",
        [(3,)],
    ),
    "a lambda in the loop reads the target later": (
        """
def f(n):
    fs = []
    for i in range(n):
        fs.append(lambda: i)
    return [g() for g in fs]
""",
        [(3,)],
    ),
    "a stored generator reads the target later": (
        """
def f(n):
    gens = []
    for i in range(n):
        gens.append(x + i for x in range(2))
    return [list(g) for g in gens]
""",
        [(3,)],
    ),
    "a consumed generator in the loop": (
        """
def f(n):
    out = []
    for i in range(n):
        out.append(sum(x * i for x in range(3)))
    return out
""",
        [(4,)],
    ),
    "negative step": (
        "\ndef f(n):\n    out = []\n    for i in range(n, 0, -2):\n        out.append(i)\n    return out\n",
        [(5,), (0,), (-3,)],
    ),
    "computed step": (
        "\ndef f(n, s):\n    out = []\n    for i in range(0, n, s):\n        out.append(i)\n    return out\n",
        [(5, 1), (5, -1), (-5, -2), (5, 0)],
    ),
    "the body changes the bound's variable": (
        """
def f(n):
    out = []
    for i in range(n):
        n -= 1
        out.append((i, n))
    return out
""",
        [(3,)],
    ),
    "continue of an inner loop": (
        """
def f(n):
    pairs = []
    for i in range(n):
        for j in range(n):
            if j == i:
                continue
            pairs.append((i, j))
    return pairs
""",
        [(3,)],
    ),
    "the target is read by the bound of a loop run again": (
        """
def f(n):
    out = []
    for _ in range(2):
        for n in range(n):
            out.append(n)
    return out
""",
        [(4,)],
    ),
    "decorators and string annotations": (
        """
import functools

def twice(fn):
    @functools.wraps(fn)
    def inner(*args):
        return fn(*args) * 2
    return inner

@twice
def value(x: 'int') -> 'int':
    return x + 1
""",
        [(1,)],
        "value",
    ),
    "locals() sees the names": ("\ndef f(a, b):\n    total = a + b\n    return sorted(locals())\n", [(1, 2)]),
    "a name shadowing range": (
        """
def f(n):
    range = lambda k: [9]
    out = []
    for i in range(n):
        out.append(i)
    return out
""",
        [(3,)],
    ),
}


@pytest.mark.parametrize("variant", [0, 1, 2])
@pytest.mark.parametrize("name", list(CASES))
def test_rewrite_keeps_behaviour(name, variant):
    source, inputs, *entry = CASES[name]
    check_same(source, inputs, variant, *entry)


def test_the_loop_rewrite_still_converts_the_plain_loops():
    for name in ("negative step", "continue of an inner loop", "the body changes the bound's variable"):
        assert "while" in rewrite_program(CASES[name][0]).text, name
    for name in ("del of the loop target", "a lambda in the loop reads the target later", "computed step"):
        assert "while" not in rewrite_program(CASES[name][0]).text, name


def test_locals_are_still_renamed_in_plain_functions():
    rewrite = rewrite_program("def has_item(values, limit):\n    total = values + limit\n    return total\n")
    assert rewrite.renamed == {"has_item": "contains_item"}
    assert not {"values", "limit", "total"} & {
        n.id for n in ast.walk(ast.parse(rewrite.text)) if isinstance(n, ast.Name)
    }


@pytest.mark.parametrize(
    "source",
    [
        "from math import *\ndef f(x):\n    return floor(x)\n",
        "class C:\n    def f(self):\n        __x = 1\n        return __x\n",
    ],
    ids=["import star", "mangled private name"],
)
def test_programs_whose_names_cannot_be_resolved_are_refused(source):
    with pytest.raises(Unsupported):
        rewrite_program(source)


# --- the differential check's inputs ---------------------------------------------------------------------------

TEST_CODE = """
def check(candidate):
    assert candidate([1, 2], 3) == 6
    assert candidate([], 0) == 0
    assert candidate(list(range(3)), 1) == 3
    assert candidate([1, 2], 3) == 6
    assert abs(candidate([0.5], 2) - 1.0) < 1e-6
"""


def test_literal_calls_are_the_tests_literal_arguments_once_each():
    calls, skipped = literal_calls(TEST_CODE)
    assert [c.args for c in calls] == [([1, 2], 3), ([], 0), ([0.5], 2)]
    assert skipped == 1  # list(range(3)) is not a literal: left out and counted


def test_tolerance_is_the_tests_own():
    assert tolerance(TEST_CODE) == 1e-6
    assert tolerance("def check(candidate):\n    assert candidate(1) == 2\n") == 0.0


def test_generated_inputs_keep_the_types_and_reach_the_edges():
    program = "def f(xs, n):\n    return sum(xs) * n\n"
    calls = build_inputs("T/1", program, "f", TEST_CODE, generated=40)
    assert calls[:3] == literal_calls(TEST_CODE)[0] and len(calls) == 43
    generated = calls[3:]
    assert all(isinstance(c.args[0], list) and type(c.args[1]) is int for c in generated)
    ints = {c.args[1] for c in generated}
    assert 0 in ints and any(v < 0 for v in ints)
    assert [] in [c.args[0] for c in generated]
    assert build_inputs("T/1", program, "f", TEST_CODE, generated=40) == calls  # seeded: the same every run
    assert build_inputs("T/2", program, "f", TEST_CODE, generated=40) != calls


def test_generated_strings_include_empty_and_unicode():
    calls = build_inputs("T/3", "def f(s):\n    return s\n", "f", "assert candidate('hello') == 'hello'\n", 40)
    texts = [c.args[0] for c in calls]
    assert "" in texts and any(not t.isascii() for t in texts)


def test_annotations_seed_the_inputs_when_no_test_call_is_literal():
    program = "def f(xs: list, s: str):\n    return s * len(xs)\n"
    calls = build_inputs("T/4", program, "f", "assert candidate(make(), 'a')\n", generated=10)
    assert len(calls) == 10 and all(isinstance(c.args[0], list) and isinstance(c.args[1], str) for c in calls)


@pytest.mark.parametrize(
    "value", [1, -0.0, 1e300, float("inf"), "ünï\n", (1,), [(), {}], {"a": [1.5]}, {1, 2}, None, True, b"x"]
)
def test_render_writes_python_that_gives_the_value_back(value):
    assert repr(eval(render(value))) == repr(value)  # our own rendering of our own value


# --- the differential check, in the sandbox -------------------------------------------------------------------

ABS = "def f(x):\n    return abs(x)\n"
POSITIVE_TESTS = "def check(candidate):\n    assert candidate(3) == 3\n    assert candidate(5) == 5\n"


def case(rewrite: str, test: str = POSITIVE_TESTS, original: str = ABS, task_id: str = "T/diff") -> Case:
    return Case(task_id, original, "f", rewrite, "g", test)


@pytest.fixture(scope="module")
def checker():
    box = DifferentialChecker(consent=True)
    yield box
    box.close()


@pytest.mark.slow
def test_differential_finds_a_difference_the_tests_miss(checker):
    identity = case("def g(x):\n    return x\n")
    tests_only = DifferentialChecker(consent=True, generated=0)
    try:
        assert tests_only.check([identity])[0].same  # the tests' own inputs cannot tell them apart
    finally:
        tests_only.close()
    verdict = checker.check([identity])[0]
    assert not verdict.same and verdict.reason.startswith("different result on input ")
    assert "the original returned " in verdict.reason and "the rewrite returned -" in verdict.reason


@pytest.mark.slow
def test_differential_calls_a_faithful_rewrite_the_same_on_every_input(checker):
    source = "def f(xs, n):\n    out = []\n    for i in range(n):\n        out.append(sum(xs) * i)\n    return out\n"
    rewrite = rewrite_program(source)
    test = "def check(candidate):\n    assert candidate([1, 2], 3) == [0, 3, 6]\n    assert candidate([], 0) == []\n"
    verdict = checker.check([Case("T/same", source, "f", rewrite.text, rewrite.renamed["f"], test)])[0]
    assert verdict.same and verdict.reason is None
    assert verdict.inputs == 42 and verdict.compared == 42 and verdict.skipped == 0


@pytest.mark.parametrize(
    "rewrite, same",
    [
        ("def g(x):\n    return [][x] if x < 0 else x\n", False),  # IndexError where the original returns
        ("def g(x):\n    if x == 0:\n        raise KeyError(x)\n    return abs(x)\n", False),
        ("def g(x):\n    return abs(x) if x != 0 else 0.0\n", False),  # 0.0 == 0, but a float is not an int
    ],
    ids=["raises instead of returning", "raises on 0", "float for int"],
)
@pytest.mark.slow
def test_differential_compares_types_and_exceptions(checker, rewrite, same):
    assert checker.check([case(rewrite)])[0].same is same


@pytest.mark.slow
def test_the_same_exception_type_is_the_same_behaviour(checker):
    original = "def f(xs):\n    return xs[0]\n"
    rewrite = "def g(xs):\n    if not xs:\n        raise IndexError('other words')\n    return xs[0]\n"
    assert checker.check([case(rewrite, "assert candidate([1])\n", original)])[0].same


@pytest.mark.slow
def test_differential_sees_arguments_mutated_by_the_rewrite(checker):
    original = "def f(xs):\n    return sorted(xs)\n"
    rewrite = "def g(xs):\n    xs.sort()\n    return list(xs)\n"
    verdict = checker.check([case(rewrite, "assert candidate([3, 1, 2]) == [1, 2, 3]\n", original)])[0]
    assert not verdict.same and verdict.reason.startswith("different arguments after the call on input 1 ")


@pytest.mark.slow
def test_differential_compares_what_is_printed(checker):
    verdict = checker.check([case("def g(x):\n    print('checking')\n    return abs(x)\n")])[0]
    assert not verdict.same and verdict.reason.startswith("different printed output on input 1 ")


@pytest.mark.slow
def test_a_rewrite_that_no_longer_ends_differs(checker):
    rewrite = "def g(x):\n    while x < 0:\n        pass\n    return abs(x)\n"
    verdict = checker.check([case(rewrite)])[0]
    assert not verdict.same and verdict.reason.startswith("the rewrite ran past its time allowance on input ")


@pytest.mark.parametrize(
    "test, same",
    [("assert abs(candidate(1.0) - 1 / 3) < 1e-6\n", True), ("assert candidate(1.0) == 1 / 3\n", False)],
    ids=["the tests' tolerance", "exact tests"],
)
@pytest.mark.slow
def test_floats_are_compared_with_the_tests_tolerance(checker, test, same):
    original = "def f(x):\n    return x / 3\n"
    rewrite = "def g(x):\n    return x / 3 + 1e-9\n"
    assert checker.check([case(rewrite, test, original)])[0].same is same


@pytest.mark.parametrize(
    "rewrite",
    [
        "import os, sys\nprint('{\"compared\": 99}')\nsys.stdout.flush()\nos._exit(0)\ndef g(x):\n    return x\n",
        "import sys\nsys.exit(0)\n",
        "def g(x):\n    import sys\n    print('{\"compared\": 1}')\n    sys.exit(0)\n",
    ],
    ids=["exits at load, printing a verdict", "sys.exit at load", "sys.exit in the call"],
)
@pytest.mark.slow
def test_only_the_trusted_bootstrap_can_say_same(checker, rewrite):
    verdict = checker.check([case(rewrite)])[0]
    assert not verdict.same and verdict.reason


@pytest.mark.slow
def test_no_comparable_input_is_never_same():
    original = "def f(x):\n    while True:\n        pass\n"
    few = DifferentialChecker(consent=True, generated=3)
    try:
        verdict = few.check([case("def g(x):\n    return x\n", original=original)])[0]
    finally:
        few.close()
    assert not verdict.same and verdict.reason.startswith("no input could be compared (5 ran past")


def test_the_differential_check_needs_consent():
    with pytest.raises(ExecutionNotAllowed):
        DifferentialChecker(consent=False)


# --- the code-ast backend: a rewrite that differs falls back --------------------------------------------------

# Both read the code object (introspection no transform can keep): the loop rewrite adds a local, renaming
# changes the function's name. The first has a faithful variant (1: no loop rewrite), the second none.
COUNTS_LOCALS = """
def count_locals(n):
    total = 0
    for i in range(n):
        total += i
    return total, len(count_locals.__code__.co_varnames)
"""
NAMES_ITSELF = "def name_of(x):\n    return name_of.__name__ + str(x)\n"


def item(index, source, entry):
    from rephraser.benchmarks.base import Item

    test = "def check(candidate):\n    assert candidate(3)\n"
    return Item(index, f"T/{index}", source, {"task_id": f"T/{index}", "entry_point": entry, "test": test})


@pytest.fixture(scope="module")
def backend_run(tmp_path_factory):
    from rephraser.rephrase.backends import CodeAstBackend
    from rephraser.rephrase.config import RephraseConfig

    out = tmp_path_factory.mktemp("codeast") / "out"
    cfg = RephraseConfig(backend="code-ast", out=str(out), benchmark="humaneval", confirm_run_unsafe_code=True)
    backend = CodeAstBackend(cfg)
    items = [item(0, COUNTS_LOCALS, "count_locals"), item(1, NAMES_ITSELF, "name_of")]
    replies = backend.generate(items, [[], []], attempt=0)
    pool = backend._checker._sandbox
    again = backend.generate(items[:1], [[]], attempt=1)
    yield backend, replies, again, pool
    backend.close()


@pytest.mark.slow
def test_backend_falls_back_to_the_variant_that_behaves(backend_run):
    backend, replies, _, _ = backend_run
    assert replies[0].error is None and "while" not in replies[0].text  # variant 1: renamed, loop kept
    assert "count_locals" not in replies[0].text
    rejected = [r for r in backend.usage()["differential"]["rejections"] if r["id"] == "T/0"]
    assert [r["variant"] for r in rejected] == [0] and rejected[0]["reason"].startswith("different result on input")


@pytest.mark.slow
def test_backend_without_a_faithful_variant_says_why_for_each(backend_run):
    _, replies, _, _ = backend_run
    assert replies[1].text is None
    assert replies[1].error.startswith("no rewrite computes what the original does: variant 0: different result")
    assert "; variant 1: " in replies[1].error and "; variant 2: " in replies[1].error


@pytest.mark.slow
def test_backend_counts_checks_rejections_and_fallbacks(backend_run):
    backend, _, again, _ = backend_run
    stats = backend.usage()["differential"]
    # T/0: variant 0 rejected, variant 1 accepted; T/1: its three variants are one text (name_of is used as a
    # value, so its parameter keeps its name; nothing else to change), checked once and rejected; the retry
    # (attempt 1 -> variant 1) proposes a text already checked: no new check
    assert (stats["checked"], stats["rejected"], stats["fell_back"], stats["no_rewrite"]) == (3, 2, 1, 1)
    assert again[0].text is not None and "while" not in again[0].text


@pytest.mark.slow
def test_backend_checks_every_round_on_one_sandbox_pool(backend_run):
    backend, _, _, pool = backend_run
    assert pool is not None and backend._checker._sandbox is pool


def test_code_ast_backend_needs_consent():
    from types import SimpleNamespace

    from rephraser.errors import ConfigError
    from rephraser.rephrase.backends import CodeAstBackend

    with pytest.raises(ConfigError, match="confirm_run_unsafe_code"):
        CodeAstBackend(SimpleNamespace(confirm_run_unsafe_code=False, max_shared_words=10))


@pytest.mark.parametrize(
    "outcome, stdout, stderr, same",
    [
        ("passed", "not json", "", True),  # the bootstrap saw it return: same, whatever it printed
        ("failed", '{"compared": 5, "skipped": 0}', "", False),  # a verdict on stdout counts for nothing
        ("failed", "", 'DIFFERENTIAL {"why": "x"', False),  # unreadable stderr: still not the same
        ("timeout", "", "", False),
    ],
    ids=["passed", "failed with a verdict printed", "failed with broken stderr", "timeout"],
)
def test_the_verdict_is_the_sandbox_outcome(outcome, stdout, stderr, same):
    from rephraser.rephrase.codeast.differential import verdict_of
    from rephraser.sandbox import Result

    verdict = verdict_of(Result("T/v", outcome, "detail", stdout, stderr), 5)
    assert verdict.same is same and (same or verdict.reason == f"the comparison program {outcome} (detail)")
