"""Sequential seeds: a group-sequential study that stops each primary comparison once it is decided
(docs/method.md, "Sequential seeds").

A sweep with `looks = [5, 10, 15, 20]` runs its evaluation seeds in waves: the first 5 seeds of
every arm, then the primaries are examined, then the next 5 seeds only of the arms that still
serve an open primary, and so on. The looks are declared in seeds before any run and never move;
the examination at look k reads exactly the first looks[k] seeds of each arm, whatever else is in
the store, so replaying the store gives the same decisions as the sweep that made them.

At each look, within one group's family of declared primaries (m of them, the fixed design's
family; G groups share alpha by Bonferroni):

- **Rejection** (supported / contradicted): each open primary i has the level alpha / G x w_i,
  w_i = 1 / (m - r) with r the primaries of the group rejected so far (Holm's weights in the
  graphical form of Maurer & Bretz 2013, "Multiple testing in group sequential trials using
  graphical approaches", Stat. Biopharm. Res. 5: a rejected hypothesis passes its level to the
  others, each then tested with the boundaries of its new level). The boundaries are those of the
  Lan-DeMets O'Brien-Fleming-type spending function at the information fractions looks / looks[-1]
  (inference.group_sequential_bounds), read on the nominal p scale: a look rejects when the
  test's ordinary p is at or below the nominal p of the boundary (with 4 degrees of freedom at the
  first look a constant t boundary would waste alpha). One-sided tests (claim 3b) use the
  two-sided boundaries of twice their level, halved. After a rejection the other open primaries
  are re-examined at the same look with their raised level.
- **Equivalence** (mean differences) and **non-superiority** (3b's "no better"): a second test at
  the Bonferroni level alpha / (G m), never passed on: equivalent within +-margin when the
  repeated 1 - 2 alpha' interval (alpha' that level's nominal p at this look, read one-sided) lies
  inside the margin; "no better" supported when the one-sided non-superiority p is below it.
- **Futility** (non-binding): a comparison stops when, at the current trend, the conditional power
  of every decision it can still reach at the last look is below `futility` (default 0.10; normal
  approximation on the information scale: the drift estimated as z_k / sqrt(t_k)). Non-binding:
  the rejection boundaries ignore it, so stopping for futility cannot raise the error rate; it
  only lowers power, which `harness design` reports.
- At the last look an open comparison is **undecided**, with its repeated interval.

The repeated confidence interval at look k (Jennison & Turnbull 2000, ch. 9) is the estimate
+- the quantile of the nominal p boundary at the comparison's level: t with the paired df for a
mean difference, Newcombe's interval at that level for a difference of rates. An estimate at an
early stop is biased away from zero (the comparison stopped because it had crossed); the report
says so beside it.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy import stats as st

from harness.analysis import inference, stats, tables
from harness.analysis.claims import CLAIMS, NO_INFORMATION, NOT_RUN, Claim, Comparison, Context, primary_arms
from harness.analysis.stats import ALPHA

FUTILITY = 0.10
OPEN = "open"  # a comparison whose next look has not been reached yet
FUTILE = "stopped for futility"
UNDECIDED = "undecided"
BIAS_NOTE = ("an estimate at an early stop is biased away from zero (it stopped because it crossed); "
             "the repeated interval keeps its coverage")


@dataclass(frozen=True)
class Design:
    """A sequential design: looks (cumulative seeds per arm, increasing), the overall level alpha,
    groups G sharing it, the equivalence margin (points) and the futility threshold on
    conditional power (0 switches futility off)."""
    looks: tuple[int, ...]
    alpha: float = ALPHA
    groups: int = 1
    margin: float = 1.0
    futility: float = FUTILITY

    def __post_init__(self):
        looks = tuple(int(x) for x in self.looks)
        if not looks or looks[0] < 3 or any(b <= a for a, b in zip(looks, looks[1:])):
            raise ValueError(f"looks must increase from at least 3 seeds, got {list(self.looks)}")
        object.__setattr__(self, "looks", looks)

    @property
    def fractions(self) -> tuple[float, ...]:
        return tuple(n / self.looks[-1] for n in self.looks)

    def z_bounds(self, level: float) -> np.ndarray:
        """The two-sided z boundaries of a hypothesis tested at `level` (shape (K,))."""
        return _z_bounds(self.fractions, round(float(level), 15))

    def nominal(self, level: float) -> np.ndarray:
        """The nominal two-sided p boundaries at `level`, one per look."""
        return inference.nominal_p_bounds(self.z_bounds(level))


@functools.lru_cache(maxsize=256)
def _z_bounds(fractions: tuple[float, ...], level: float) -> np.ndarray:
    return inference.group_sequential_bounds(np.array(fractions), level)


@dataclass(frozen=True)
class Decision:
    """Where one primary comparison of one group stands.

    claim, comparison (its label), a, b; verdict (supported, contradicted, equivalent within
    +-margin, stopped for futility, undecided, no information, not run, not testable (...), or
    open while its next look is not reached); look (1-based) and seeds (per arm) of the last look
    it was examined at, which is its stopping look once decided; estimate and the repeated
    interval rci_low / rci_high at nominal two-sided level rci_p (a 1 - rci_p interval); p, the
    nominal p of the test that decided it (or of the rejection test) and bound, the boundary it
    was compared with; level: the share of alpha the rejection test had at that look; cp: the
    largest conditional power left at a futility stop; unit; n: runs behind it; note;
    rci_coverage: the repeated interval's simultaneous coverage over the looks (1 - the level of
    the boundaries it is read from: the interval the decision used, so for 3b's one-sided tests
    the two-sided interval at twice their one-sided level); inference_unit: "task" (seeds and
    test examples random: per-example results at every paired seed) or "test set" (seeds only);
    budget: the student budget its runs were read at when primaries are declared per budget (NaN:
    the group's own runs)."""
    claim: str
    comparison: str
    a: str
    b: str
    verdict: str
    look: int
    seeds: int
    estimate: float = np.nan
    rci_low: float = np.nan
    rci_high: float = np.nan
    rci_p: float = np.nan
    p: float = np.nan
    bound: float = np.nan
    level: float = np.nan
    cp: float = np.nan
    unit: str = "points"
    n: str = ""
    note: str = ""
    rci_coverage: float = np.nan
    inference_unit: str = ""
    budget: float = np.nan

    @property
    def stopped(self) -> bool:
        return self.verdict != OPEN


@dataclass
class Replay:
    """The sequential examination of one group (or one family declared per budget): decisions (one
    per declared primary), looks reached, the seeds each arm ran in it (arm -> seeds; runs_at: (arm,
    budget) -> seeds, budget NaN for the group's own runs), and the arms the next look needs
    (next_arms; next_at: as (arm, budget); empty when every primary is decided or the last look is
    done)."""
    decisions: list[Decision]
    reached: int
    arm_seeds: dict[str, int] = field(default_factory=dict)
    next_arms: list[str] = field(default_factory=list)
    runs_at: dict[tuple[str, float], int] = field(default_factory=dict)
    next_at: list[tuple[str, float]] = field(default_factory=list)


# ---------------------------------------------------------------- one look, one comparison

def _z(p: float, sign: float) -> float:
    """The signed z of a two-sided p."""
    return float(math.copysign(st.norm.isf(min(max(p, 1e-300), 1.0) / 2), sign)) if np.isfinite(p) else 0.0


def _z_one_sided(p: float) -> float:
    """The z of a one-sided p (0 when p is undefined)."""
    return float(st.norm.isf(min(max(p, 1e-300), 1.0))) if np.isfinite(p) else 0.0


def _cp_two_sided(z: float, t: float, z_last: float) -> float:
    """Conditional power of |Z_K| >= z_last at the current trend (drift z / sqrt(t))."""
    if t >= 1:
        return float(abs(z) >= z_last)
    mean, sd = z / math.sqrt(t), math.sqrt(1 - t)
    return float(st.norm.cdf((mean - z_last) / sd) + st.norm.cdf((-z_last - mean) / sd))


def _cp_one_sided(z: float, t: float, z_last: float) -> float:
    if t >= 1:
        return float(z >= z_last)
    return float(st.norm.cdf((z / math.sqrt(t) - z_last) / math.sqrt(1 - t)))


def _cp_equivalence(cmp: Comparison, t: float, z_last: float, margin: float) -> float:
    """P(the last look's repeated interval lies inside +-margin) at the current trend: the final
    estimate ~ N(estimate, se^2 t (1 - t)), its interval half-width z_last x se sqrt(t)."""
    if not (np.isfinite(cmp.se) and np.isfinite(cmp.estimate)):
        return 0.0
    room = margin - z_last * cmp.se * math.sqrt(t)
    if room <= 0:
        return 0.0
    s = cmp.se * math.sqrt(t * (1 - t))
    if s == 0:
        return float(abs(cmp.estimate) < room)
    return float(st.norm.cdf((room - cmp.estimate) / s) - st.norm.cdf((-room - cmp.estimate) / s))


def _interval(cmp: Comparison, p_level: float) -> tuple[float, float]:
    """The 1 - p_level interval of a comparison (two-sided): t with its df for a mean difference,
    Newcombe's for a difference of rates (percentage points)."""
    if not np.isfinite(p_level):
        return np.nan, np.nan
    if cmp.kind in ("difference", "no-better"):
        if not (np.isfinite(cmp.se) and np.isfinite(cmp.df)):
            return np.nan, np.nan
        h = float(st.t.isf(p_level / 2, cmp.df) * cmp.se)
        return cmp.estimate - h, cmp.estimate + h
    if cmp.kind == "rates" and cmp.rates:
        lo, hi = stats.rate_difference_interval(*cmp.rates, level=1 - p_level)
        return 100 * lo, 100 * hi
    return np.nan, np.nan


def _for_want_of_runs(reason: str) -> bool:
    """An untestable comparison that more seeds can make testable ("n < 3", "baseline n < 4")."""
    return "n <" in reason


def _no_information(cmp: Comparison) -> bool:
    if cmp.kind != "rates" or not cmp.rates:
        return False
    ka, na, kb, nb = cmp.rates
    return ka + kb == 0 or ka + kb == na + nb


def _rejects(cmp: Comparison, design: Design, level: float, k: int) -> tuple[str | None, float, float]:
    """(verdict or None, the nominal p compared, its boundary) of the rejection test at look k."""
    if cmp.kind == "no-better":  # one-sided superiority: contradicted when significant
        bound = design.nominal(2 * level)[k] / 2
        return ("contradicted" if cmp.p <= bound else None), cmp.p, bound
    bound = design.nominal(level)[k]
    if not np.isfinite(cmp.p) or cmp.p > bound or _no_information(cmp):
        return None, cmp.p, bound
    return ("supported" if np.sign(cmp.signed) == cmp.direction else "contradicted"), cmp.p, bound


def _second(cmp: Comparison, design: Design, k: int) -> tuple[str | None, float, float]:
    """(verdict or None, p, boundary) of the second test at the Bonferroni level alpha / (G m):
    equivalence by the repeated interval (a mean difference) or non-superiority (3b)."""
    level = design.alpha / (design.groups * _family_size())
    bound = design.nominal(2 * level)[k] / 2  # each one-sided test at `level`
    if cmp.kind == "no-better":
        return ("supported" if np.isfinite(cmp.p_equiv) and cmp.p_equiv <= bound else None), cmp.p_equiv, bound
    if cmp.kind == "difference":
        lo, hi = _interval(cmp, 2 * bound)
        inside = np.isfinite(lo) and -cmp.margin < lo and hi < cmp.margin
        return (f"equivalent within ±{cmp.margin:g}" if inside else None), cmp.p_equiv, bound
    return None, np.nan, np.nan


def _futility_cp(cmp: Comparison, design: Design, level: float, k: int) -> float:
    """The largest conditional power (at the current trend) among the decisions still reachable."""
    t, last = design.fractions[k], len(design.looks) - 1
    if cmp.kind == "no-better":
        eq_level = design.alpha / (design.groups * _family_size())
        return max(_cp_one_sided(_z_one_sided(cmp.p), t, design.z_bounds(2 * level)[last]),
                   _cp_one_sided(_z_one_sided(cmp.p_equiv), t, design.z_bounds(2 * eq_level)[last]))
    cp = _cp_two_sided(_z(cmp.p, cmp.signed if np.isfinite(cmp.signed) else 0.0), t, design.z_bounds(level)[last])
    if cmp.kind == "difference":
        eq_level = design.alpha / (design.groups * _family_size())
        cp = max(cp, _cp_equivalence(cmp, t, design.z_bounds(2 * eq_level)[last], cmp.margin))
    return cp


@functools.lru_cache(maxsize=1)
def _family_size() -> int:
    return sum(c.primary is not None for c in CLAIMS)


# ---------------------------------------------------------------- replay of one group

def _arms_of(contexts: dict[float, Context], claims: list[Claim], at) -> list[tuple[str, float]]:
    """The (arm, budget) pairs of `claims`' primaries, each claim at its budget at(claim)."""
    names = []
    for claim in claims:
        b = at(claim)
        names += [(a, b) for a in primary_arms(contexts[b], claim) or ()]
    return list(dict.fromkeys(names))


def _complete(runs: pd.DataFrame, arms: list[str], seeds: list) -> bool:
    """Every arm has a successful run at every one of `seeds`."""
    ok = runs[(runs["status"] == "ok") & runs["arm"].isin(arms) & runs["seed"].isin(seeds)]
    have = ok.groupby("arm")["seed"].nunique()
    return all(have.get(a, 0) == len(seeds) for a in arms)


def replay(group_runs: pd.DataFrame, design: Design, seeds: list | None = None,
           replacements: pd.DataFrame | None = None, claims: list[Claim] | None = None,
           examples: "pd.DataFrame | tables.Examples | None" = None,
           budgets: dict[str, float] | None = None) -> Replay:
    """Examine one group's runs look by look (module docstring).

    group_runs: the normalised runs of one group, the predecessor's included (any seeds: look k
    reads only the first looks[k] of `seeds`, default 0, 1, 2, ...); a look is reached when every
    arm of the primaries still open has a successful run at each of its seeds. examples: the
    per-example results (as evaluate_claims): with them a mean comparison's p at each look, and its
    repeated interval, are task-level (docs/method.md, "The unit of inference"). budgets: claim id
    -> the budget its primary is read at (primaries declared per budget): group_runs then holds one
    family's runs at every budget, each primary reads the runs at its budget (and the predecessor's),
    and the family is the one Holm family; None: every primary reads all of group_runs.
    """
    claims = [c for c in (CLAIMS if claims is None else claims) if c.primary is not None]
    seeds = list(range(design.looks[-1])) if seeds is None else list(seeds)[: design.looks[-1]]
    examples = tables.Examples.of(examples)

    def at(claim: Claim) -> float | None:  # None: the group's own runs
        return float(budgets[claim.id]) if budgets and claim.id in budgets else None

    def nan(b: float | None) -> float:
        return np.nan if b is None else b
    places = list(dict.fromkeys(at(c) for c in claims))
    sliced = {b: group_runs if b is None else group_runs[group_runs["budget"].isna() | (group_runs["budget"] == b)]
              for b in places}
    full = {b: Context.of(sliced[b], replacements, margin=design.margin, alpha=design.alpha, with_power=False)
            for b in places}
    decided: dict[str, Decision] = {}
    for claim in claims:
        if primary_arms(full[at(claim)], claim) is None:
            a, b = claim.primary.a, claim.primary.b
            decided[claim.id] = Decision(claim.id, f"{a} vs {b}", a, b, NOT_RUN, 0, 0, budget=nan(at(claim)))
    rejected: set[str] = set()
    last_seen: dict[str, Decision] = {}
    arm_seeds: dict[str, int] = {}
    runs_at: dict[tuple[str, float], int] = {}
    reached = 0
    m = len(claims)
    for k, n in enumerate(design.looks):
        open_claims = [c for c in claims if c.id not in decided]
        if not open_claims:
            break
        arms = _arms_of(full, open_claims, at)
        look_seeds = seeds[:n]
        if len(look_seeds) < n or not all(_complete(sliced[b], [a for a, ab in arms if ab == b], look_seeds)
                                          for b in places):
            break
        reached = k + 1
        for a, b in arms:
            arm_seeds[a] = n
            runs_at[(a, nan(b))] = n
        ctx = {b: Context.of(sliced[b][sliced[b]["seed"].isin(look_seeds)], replacements, examples,
                             margin=design.margin, alpha=design.alpha, with_power=False)
               for b in {at(c) for c in open_claims}}
        cmps = {c.id: c.test(ctx[at(c)], *primary_arms(ctx[at(c)], c)) for c in open_claims}
        def decision(claim: Claim, cmp: Comparison, verdict: str, p: float, bound: float, level: float,
                     rci: tuple[float, float], cp: float = np.nan, note: str = "") -> Decision:
            """rci: (the interval's nominal two-sided p at this look, the level of the boundaries it
            is read from: its simultaneous coverage is 1 - that level)."""
            rci_p, rci_level = rci
            lo, hi = _interval(cmp, rci_p)
            notes = "; ".join(x for x in (cmp.note, note) if x)
            unit = cmp.inference_unit if cmp.kind in ("difference", "no-better") else ""
            return Decision(claim.id, cmp.label, cmp.a, cmp.b, verdict, k + 1, n, cmp.estimate, lo, hi, rci_p,
                            p, bound, level, cp, cmp.unit, _n(cmp), notes,
                            1 - rci_level if np.isfinite(rci_p) else np.nan, unit, nan(at(claim)))

        def rejection_rci(cmp: Comparison, level: float) -> tuple[float, float]:
            """The repeated interval the rejection test reads: two-sided at `level`, or for 3b's
            one-sided superiority test (boundaries of twice its level, halved) two-sided at 2 level."""
            wide = 2 * level if cmp.kind == "no-better" else level
            return design.nominal(wide)[k], wide
        eq_level = 2 * design.alpha / (design.groups * _family_size())  # the second tests' two-sided level

        changed = True
        while changed and len(rejected) < m:  # Holm's passing: a rejection raises the others' level at this look
            changed = False
            level = design.alpha / design.groups / (m - len(rejected))
            for claim in open_claims:
                cmp = cmps[claim.id]
                if claim.id in decided or cmp.untested:
                    continue
                verdict, p, bound = _rejects(cmp, design, level, k)
                if verdict:
                    decided[claim.id] = decision(claim, cmp, verdict, p, bound, level, rejection_rci(cmp, level))
                    rejected.add(claim.id)
                    changed = True
        level = design.alpha / design.groups / max(m - len(rejected), 1)
        for claim in open_claims:
            if claim.id in decided:
                continue
            cmp = cmps[claim.id]
            rci = rejection_rci(cmp, level)
            if cmp.untested:  # too few runs may become enough at a later look; other reasons stay
                none = (np.nan, np.nan)
                if k == len(design.looks) - 1 or not _for_want_of_runs(cmp.untested):
                    decided[claim.id] = decision(claim, cmp, cmp.untested, np.nan, np.nan, level, none)
                else:
                    last_seen[claim.id] = decision(claim, cmp, OPEN, np.nan, np.nan, level, none)
                continue
            verdict, p, bound = _second(cmp, design, k)
            if verdict:  # equivalence or non-superiority: the 1 - 2 x bound interval both read
                decided[claim.id] = decision(claim, cmp, verdict, p, bound, level, (2 * bound, eq_level))
                continue
            _, p, bound = _rejects(cmp, design, level, k)
            if k == len(design.looks) - 1:
                final = NO_INFORMATION if _no_information(cmp) else UNDECIDED
                decided[claim.id] = decision(claim, cmp, final, p, bound, level, rci)
                continue
            cp = _futility_cp(cmp, design, level, k)
            if design.futility and cp < design.futility:
                note = "no failures or only failures so far" if _no_information(cmp) else ""
                decided[claim.id] = decision(claim, cmp, FUTILE, p, bound, level, rci, cp, note)
            else:
                last_seen[claim.id] = decision(claim, cmp, OPEN, p, bound, level, rci, cp)
    decisions = []
    for claim in claims:
        d = decided.get(claim.id) or last_seen.get(claim.id)
        if d is None:
            a, b = claim.primary.a, claim.primary.b
            d = Decision(claim.id, f"{a} vs {b}", a, b, OPEN, 0, 0, budget=nan(at(claim)))
        decisions.append(d)
    still = [c for c in claims if decided.get(c.id) is None]
    done = reached == len(design.looks)
    following = [] if done or not still else _arms_of(full, still, at)
    return Replay(decisions, reached, arm_seeds, list(dict.fromkeys(a for a, _ in following)), runs_at,
                  [(a, nan(b)) for a, b in following])


def _n(cmp: Comparison) -> str:
    return f"{cmp.n_paired} pairs" if cmp.n_paired else f"{cmp.n_a} vs {cmp.n_b}"


def decisions_frame(replays: list[tuple[dict, Replay]]) -> pd.DataFrame:
    """One row per (group, primary): the group key's columns, then Decision's fields; `budget` is
    the group key's, or the decision's own where primaries are declared per budget."""
    from dataclasses import asdict, fields

    key_cols = list(replays[0][0]) if replays else []
    rows = []
    for key, r in replays:
        for d in r.decisions:
            row = {**key, **asdict(d)}
            if not np.isfinite(d.budget) and "budget" in key:
                row["budget"] = key["budget"]
            rows.append(row)
    cols = key_cols + [f.name for f in fields(Decision) if f.name not in key_cols]
    return pd.DataFrame(rows, columns=cols)


def examine_store(runs: pd.DataFrame, looks, seeds, futility: float = FUTILITY,
                  examples: pd.DataFrame | None = None,
                  primaries: dict[str, float] | None = None) -> list[tuple[dict, Replay]]:
    """The sequential examination of a store's runs table: per group (its key: task, model,
    successor and predecessor layers, budget) the Replay of its primaries, G = the number of groups.
    examples: the store's per-example results (harness.store.examples.examples_table), if any.
    primaries: claim id -> the budget its primary is read at (a sweep's `primaries`): one Replay per
    family (task, model, successor and predecessor layers; key budget NaN, each decision its own),
    G = the number of families."""
    from harness.analysis.groups import family_specs, group_specs
    from harness.store.schema import normalize_runs

    if runs.empty:
        return []
    specs = group_specs(normalize_runs(runs), split_budgets=primaries is not None)
    ex = tables.Examples.of(examples)
    if primaries is None:
        design = Design(tuple(looks), groups=len(specs), futility=futility)
        return [(dict(task=t, model=m, successor_layers=ls, predecessor_layers=lp, budget=b),
                 replay(rows, design, seeds, examples=ex)) for t, m, ls, lp, b, rows in specs]
    families = family_specs(specs)
    design = Design(tuple(looks), groups=len(families), futility=futility)
    out = []
    for (t, m, ls, lp), members in families.items():
        rows = pd.concat([spec[-1] for spec in members]).drop_duplicates("run_id")
        out.append((dict(task=t, model=m, successor_layers=ls, predecessor_layers=lp, budget=np.nan),
                    replay(rows, design, seeds, examples=ex, budgets=primaries)))
    return out
