//! Flattened-agent detection: splitting interleaved request streams into sibling agents.
//!
//! Many captures record parallel agent fan-outs (workflow agents that carry no agent-id
//! header) as flat top-level requests interleaved with the main agent's turns, and flatten
//! fan-outs inside a `subagent` entry the same way. Replayed as one conversation, such a
//! stream collapses the recorded concurrency and resets the context at every interleave.
//! AIPerf's Weka loader (the client InferenceX runs, agentic.md §3.2) recovers the agents
//! from hash-id longest-common-prefix evidence; this module is that detection, ported as
//! semantics (same rules, thresholds, tie-breaks and names), so the same trace splits into
//! the same conversations:
//!
//! 1. **Chains** (requests in `(t, index)` order): a request whose hash list fully extends a
//!    chain's tail, whose tail has ended by the request's start and ran on the same model,
//!    continues that chain (deepest tail wins, then the lowest chain). Otherwise it forks a
//!    new chain off the tail with the deepest LCP. Requests without hash ids ride the main
//!    chain. The first request founds the main chain.
//! 2. **Seams**: a fork off a tail that is never extended later is the same agent continuing
//!    after a context edit (compaction), unless it starts more than `seam_max_gap` seconds
//!    after the tail ended while keeping less than `seam_min_overlap` of its blocks. The
//!    deepest eligible fork (then the earliest, then the lowest chain) is spliced onto the
//!    tail; the tail's other forks are re-keyed against the merged chain's new tail.
//! 3. **Classes** of the remaining worker chains, in precedence order: `aux` (at most
//!    `aux_max_requests` requests and a first request on another model than the main chain,
//!    or with input below `max(aux_isl_floor, aux_isl_ratio × main peak input)`), reduction
//!    (one request, output in `(0, reduction_osl_max)`, input ≥ `aux_isl_floor` and above
//!    `reduction_ratio` × output; also named `aux`), worker group `wg:G_M` (chains forked at
//!    depth > 0 off the same parent request whose active intervals overlap, at least
//!    `worker_group_min` of them), else a solo agent `fa:NNN` (`NNN` = index among workers).
//! 4. A leading request that shares no prefix with any other (a title-generation call, or a
//!    fully block-disjoint one-shot) is set aside before detection so it cannot found the
//!    main chain; it rides the main chain for replay.
//!
//! The knobs are AIPerf's `AIPERF_DATASET_WEKA_*` environment variables with AIPerf's
//! defaults; `AIPERF_DATASET_WEKA_SPLIT_FLATTENED_AGENTS=false` (or `runner agentic
//! --no-split-flattened-agents`) turns detection off at both layers.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, HashMap, HashSet};

/// Seconds of slack in time comparisons (AIPerf's epsilon).
pub const EPS: f64 = 1e-6;

/// Output tokens at or below which a leading prefix-disjoint request is a title-generation
/// preamble.
const TITLE_GEN_MAX_OUTPUT: u64 = 64;

/// Detection settings (AIPerf's `AIPERF_DATASET_WEKA_*`, same defaults).
#[derive(Debug, Clone, PartialEq)]
pub struct Knobs {
    /// `SPLIT_FLATTENED_AGENTS`: run detection at all (both layers).
    pub split: bool,
    /// `SEAM_MAX_GAP_SECONDS`: a seam candidate starting later than this after the tail
    /// ends must also keep `seam_min_overlap` of the tail's blocks.
    pub seam_max_gap: f64,
    /// `SEAM_MIN_OVERLAP_RATIO`: see `seam_max_gap`.
    pub seam_min_overlap: f64,
    /// `AUX_MAX_REQUESTS`: chains with at most this many requests may be sidecars (0: none).
    pub aux_max_requests: usize,
    /// `AUX_ISL_RATIO`: sidecar input threshold relative to the main chain's peak input.
    pub aux_isl_ratio: f64,
    /// `AUX_ISL_FLOOR`: absolute sidecar input threshold (tokens); also the reduction floor.
    pub aux_isl_floor: u64,
    /// `AUX_CROSS_MODEL`: a short chain on another model than the main chain is a sidecar.
    pub aux_cross_model: bool,
    /// `AUX_REDUCTION_OSL_MAX`: reduction output bound (0 disables the reduction arm).
    pub reduction_osl_max: u64,
    /// `AUX_REDUCTION_RATIO`: minimum input/output ratio of a reduction.
    pub reduction_ratio: f64,
    /// `WORKER_GROUP_MIN`: members of a concurrent same-fork-point fan-out to name it a
    /// worker group (0 disables).
    pub worker_group_min: usize,
}

impl Default for Knobs {
    fn default() -> Self {
        Knobs {
            split: true,
            seam_max_gap: 3600.0,
            seam_min_overlap: 0.5,
            aux_max_requests: 1,
            aux_isl_ratio: 0.10,
            aux_isl_floor: 16384,
            aux_cross_model: true,
            reduction_osl_max: 4000,
            reduction_ratio: 20.0,
            worker_group_min: 3,
        }
    }
}

/// Prefix of the environment variables.
pub const ENV_PREFIX: &str = "AIPERF_DATASET_WEKA_";

fn parse_bool(v: &str) -> Option<bool> {
    match v.trim().to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "on" | "t" | "y" => Some(true),
        "0" | "false" | "no" | "off" | "f" | "n" => Some(false),
        _ => None,
    }
}

impl Knobs {
    /// AIPerf's defaults overridden by the `AIPERF_DATASET_WEKA_*` variables that are set;
    /// a malformed value is an error naming the variable.
    pub fn from_env() -> Result<Knobs, String> {
        Knobs::from_vars(|k| std::env::var(k).ok())
    }

    /// As [`Knobs::from_env`], reading variables through `get`.
    pub fn from_vars(get: impl Fn(&str) -> Option<String>) -> Result<Knobs, String> {
        let mut k = Knobs::default();
        let var = |name: &str| get(&format!("{ENV_PREFIX}{name}"));
        let bad =
            |name: &str, v: &str, what: &str| format!("{ENV_PREFIX}{name}={v:?}: expected {what}");
        macro_rules! num {
            ($field:ident, $name:literal, $ty:ty, $ok:expr, $what:literal) => {
                if let Some(v) = var($name) {
                    let x: $ty = v.trim().parse().map_err(|_| bad($name, &v, $what))?;
                    #[allow(clippy::redundant_closure_call)]
                    if !($ok)(x) {
                        return Err(bad($name, &v, $what));
                    }
                    k.$field = x;
                }
            };
        }
        for (name, field) in [
            ("SPLIT_FLATTENED_AGENTS", &mut k.split),
            ("AUX_CROSS_MODEL", &mut k.aux_cross_model),
        ] {
            if let Some(v) = var(name) {
                *field = parse_bool(&v).ok_or_else(|| bad(name, &v, "a boolean"))?;
            }
        }
        num!(
            seam_max_gap,
            "SEAM_MAX_GAP_SECONDS",
            f64,
            |x: f64| x >= 0.0,
            "a number ≥ 0"
        );
        num!(
            seam_min_overlap,
            "SEAM_MIN_OVERLAP_RATIO",
            f64,
            |x: f64| (0.0..=1.0).contains(&x),
            "a number in [0, 1]"
        );
        num!(
            aux_max_requests,
            "AUX_MAX_REQUESTS",
            usize,
            |_| true,
            "an integer ≥ 0"
        );
        num!(
            aux_isl_ratio,
            "AUX_ISL_RATIO",
            f64,
            |x: f64| x >= 0.0,
            "a number ≥ 0"
        );
        num!(
            aux_isl_floor,
            "AUX_ISL_FLOOR",
            u64,
            |_| true,
            "an integer ≥ 0"
        );
        num!(
            reduction_osl_max,
            "AUX_REDUCTION_OSL_MAX",
            u64,
            |_| true,
            "an integer ≥ 0"
        );
        num!(
            reduction_ratio,
            "AUX_REDUCTION_RATIO",
            f64,
            |x: f64| x >= 0.0,
            "a number ≥ 0"
        );
        num!(
            worker_group_min,
            "WORKER_GROUP_MIN",
            usize,
            |_| true,
            "an integer ≥ 0"
        );
        Ok(k)
    }
}

/// One request as detection sees it.
#[derive(Debug, Clone, Copy)]
pub struct Req<'a> {
    /// Position in the enclosing request list (`requests` of the trace or of the subagent
    /// entry): breaks time ties and orders anchors.
    pub outer: usize,
    /// Start, seconds on the session clock.
    pub t: f64,
    /// Recorded duration (seconds; missing, negative or non-finite counts as 0).
    pub api_time: f64,
    /// The request's hash ids.
    pub hash: &'a [u32],
    /// Recorded model (`""` when absent).
    pub model: &'a str,
    /// `in` tokens.
    pub input: u64,
    /// `out` tokens.
    pub output: u64,
}

impl Req<'_> {
    /// End of the recorded interval.
    pub fn end(&self) -> f64 {
        let d = if self.api_time.is_finite() {
            self.api_time.max(0.0)
        } else {
            0.0
        };
        self.t + d
    }
}

fn lcp(a: &[u32], b: &[u32]) -> usize {
    a.iter().zip(b).take_while(|(x, y)| x == y).count()
}

/// Where a chain split off another.
#[derive(Debug, Clone, Copy)]
struct Fork {
    /// Chain forked from (`None`: no shared context).
    parent: Option<usize>,
    /// `outer` of the tail request forked from.
    tail: Option<usize>,
    /// Blocks shared with that tail.
    depth: usize,
    /// Start of the chain's first request.
    time: f64,
}

#[derive(Debug, Clone, Default)]
struct Chain {
    /// Positions (into the input slice) of its requests.
    reqs: Vec<usize>,
    fork: Option<Fork>,
    spliced_into: Option<usize>,
    /// Phase-1 tail: position of the last hash-bearing request.
    tail: Option<usize>,
}

/// The detected chains of one request list.
#[derive(Debug, Clone)]
pub struct Split {
    /// Positions (into the input slice) of the main chain's requests, in replay order.
    pub main: Vec<usize>,
    /// Worker chains in start order: (session-id suffix without the leading `:`s, e.g.
    /// `fa:000`, positions of its requests).
    pub workers: Vec<(String, Vec<usize>)>,
    /// Join seams spliced (for the log line).
    pub seams: usize,
    /// Position of the detected main chain's first hash-bearing request (the preamble
    /// excluded): the base a chain's declared system prefix is checked against.
    pub base: Option<usize>,
}

struct Detection {
    chains: Vec<Chain>,
    main: usize,
    workers: Vec<usize>,
    seams: usize,
}

/// Phase 1 + phase 2 over `reqs[idx]` for `idx` in `subset`.
fn detect(reqs: &[Req], subset: &[usize], k: &Knobs) -> Detection {
    let mut ordered: Vec<usize> = subset.to_vec();
    ordered.sort_by(|&a, &b| {
        reqs[a]
            .t
            .total_cmp(&reqs[b].t)
            .then(reqs[a].outer.cmp(&reqs[b].outer))
    });
    let mut chains: Vec<Chain> = vec![];
    let mut chain_of: HashMap<usize, usize> = HashMap::new();
    // Keyed by the tail's position; BTreeMap gives the sorted initial worklist.
    let mut forks_by_tail: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
    let tail_of = |c: &Chain| c.tail.map_or(&[][..], |p| reqs[p].hash);
    for &p in &ordered {
        let r = &reqs[p];
        if r.hash.is_empty() {
            if chains.is_empty() {
                chains.push(Chain::default());
            }
            chains[0].reqs.push(p);
            chain_of.insert(p, 0);
            continue;
        }
        let append = |chains: &mut Vec<Chain>, chain_of: &mut HashMap<usize, usize>, c: usize| {
            chains[c].reqs.push(p);
            chains[c].tail = Some(p);
            chain_of.insert(p, c);
        };
        if chains.is_empty() {
            chains.push(Chain::default());
            append(&mut chains, &mut chain_of, 0);
            continue;
        }
        // Extension: deepest complete-prefix tail that ended in time, same model.
        let mut best: Option<usize> = None;
        let mut best_len = 0usize;
        for (i, c) in chains.iter().enumerate() {
            let Some(tp) = c.tail else { continue };
            let tail = reqs[tp].hash;
            let tl = tail.len();
            if tl > r.hash.len() || (best.is_some() && tl <= best_len) {
                continue;
            }
            if reqs[tp].model != r.model || reqs[tp].end() > r.t + EPS {
                continue;
            }
            if r.hash[..tl] == *tail {
                best = Some(i);
                best_len = tl;
            }
        }
        if let Some(c) = best {
            append(&mut chains, &mut chain_of, c);
            continue;
        }
        // Fork off the deepest-LCP tail (ties: deeper tail, then lower index).
        let mut parent: Option<usize> = None;
        let mut key = (0usize, 0usize);
        for (i, c) in chains.iter().enumerate() {
            let tail = tail_of(c);
            if tail.is_empty() {
                continue;
            }
            let d = lcp(tail, r.hash);
            if d > 0 && (d, tail.len()) > key {
                parent = Some(i);
                key = (d, tail.len());
            }
        }
        if parent.is_none() && chains.iter().all(|c| c.tail.is_none()) {
            // Only empty-hash rows so far: this is the main agent's first real request.
            append(&mut chains, &mut chain_of, 0);
            continue;
        }
        let fork = Fork {
            parent,
            tail: parent.and_then(|c| chains[c].tail),
            depth: key.0,
            time: r.t,
        };
        chains.push(Chain {
            fork: Some(fork),
            ..Chain::default()
        });
        let new = chains.len() - 1;
        append(&mut chains, &mut chain_of, new);
        if let Some(t) = fork.tail {
            if fork.depth > 0 {
                forks_by_tail.entry(t).or_default().push(new);
            }
        }
    }
    let seams = resolve_seams(reqs, &mut chains, &mut forks_by_tail, &mut chain_of, k);
    let resolve = |chains: &[Chain], mut i: usize| {
        while let Some(j) = chains[i].spliced_into {
            i = j;
        }
        i
    };
    for i in 0..chains.len() {
        if chains[i].spliced_into.is_some() {
            continue;
        }
        if let Some(pc) = chains[i].fork.and_then(|f| f.parent) {
            let r = resolve(&chains, pc);
            chains[i].fork.as_mut().unwrap().parent = Some(r);
        }
    }
    let main = resolve(&chains, chain_of[&ordered[0]]);
    let mut workers: Vec<usize> = (0..chains.len())
        .filter(|&i| chains[i].spliced_into.is_none() && i != main)
        .collect();
    workers.sort_by(|&a, &b| {
        let (ra, rb) = (&reqs[chains[a].reqs[0]], &reqs[chains[b].reqs[0]]);
        ra.t.total_cmp(&rb.t).then(ra.outer.cmp(&rb.outer))
    });
    Detection {
        chains,
        main,
        workers,
        seams,
    }
}

/// Phase 2: splice join-seam continuations onto dead tails. Returns the number of seams.
fn resolve_seams(
    reqs: &[Req],
    chains: &mut [Chain],
    forks_by_tail: &mut BTreeMap<usize, Vec<usize>>,
    chain_of: &mut HashMap<usize, usize>,
    k: &Knobs,
) -> usize {
    // Tails are compared by their requests' `outer` order, as AIPerf keys them by outer
    // index; positions in the input slice are in `outer` order, so positions do as well.
    let mut heap: BinaryHeap<Reverse<usize>> = forks_by_tail.keys().map(|&x| Reverse(x)).collect();
    let mut processed: HashSet<usize> = HashSet::new();
    let mut seams = 0;
    let resolve = |chains: &[Chain], mut i: usize| {
        while let Some(j) = chains[i].spliced_into {
            i = j;
        }
        i
    };
    let last_hash = |chains: &[Chain], c: usize| {
        chains[c]
            .reqs
            .iter()
            .rev()
            .copied()
            .find(|&p| !reqs[p].hash.is_empty())
    };
    while let Some(Reverse(tail)) = heap.pop() {
        if !processed.insert(tail) {
            continue;
        }
        let owner = resolve(chains, chain_of[&tail]);
        if last_hash(chains, owner) != Some(tail) {
            continue; // the longer state was extended: every fork is a spawn
        }
        let registered: Vec<usize> = forks_by_tail[&tail]
            .iter()
            .copied()
            .filter(|&c| chains[c].spliced_into.is_none())
            .collect();
        let tr = &reqs[tail];
        let t_end = tr.end();
        let tail_blocks = tr.hash.len();
        let elected = registered
            .iter()
            .copied()
            .filter(|&c| {
                let Some(f) = chains[c].fork else {
                    return false;
                };
                let first = &reqs[chains[c].reqs[0]];
                let blocked = tail_blocks > 0
                    && first.t - t_end > k.seam_max_gap
                    && (f.depth as f64 / tail_blocks as f64) < k.seam_min_overlap;
                f.depth > 0 && t_end <= first.t + EPS && first.model == tr.model && !blocked
            })
            // Deepest, then earliest fork, then lowest chain.
            .max_by(|&a, &b| {
                let (fa, fb) = (chains[a].fork.unwrap(), chains[b].fork.unwrap());
                fa.depth
                    .cmp(&fb.depth)
                    .then(fb.time.total_cmp(&fa.time))
                    .then(b.cmp(&a))
            });
        let Some(elected) = elected else { continue };
        let moved = std::mem::take(&mut chains[elected].reqs);
        for &p in &moved {
            chain_of.insert(p, owner);
        }
        chains[owner].reqs.extend(&moved);
        chains[elected].reqs = moved;
        chains[elected].spliced_into = Some(owner);
        seams += 1;
        let Some(new_tail) = last_hash(chains, owner) else {
            continue;
        };
        let mut rekeyed = false;
        for &c in &registered {
            if c == elected || chains[c].spliced_into.is_some() || chains[c].fork.is_none() {
                continue;
            }
            let d = lcp(reqs[new_tail].hash, reqs[chains[c].reqs[0]].hash);
            if d == 0 {
                continue;
            }
            let f = chains[c].fork.as_mut().unwrap();
            f.tail = Some(new_tail);
            f.depth = d;
            f.parent = Some(owner);
            forks_by_tail.entry(new_tail).or_default().push(c);
            rekeyed = true;
        }
        if rekeyed {
            processed.remove(&new_tail);
            heap.push(Reverse(new_tail));
        }
    }
    seams
}

/// `{chain: (group, member)}` for worker-group members.
fn worker_groups(reqs: &[Req], d: &Detection, min: usize) -> HashMap<usize, (usize, usize)> {
    let mut out = HashMap::new();
    if min == 0 {
        return out;
    }
    // (t0, t1, first outer, chain) per fork point, in first-seen order.
    type Cand = (f64, f64, usize, usize);
    let mut keys: Vec<(usize, usize)> = vec![];
    let mut buckets: HashMap<(usize, usize), Vec<Cand>> = HashMap::new();
    for &ci in &d.workers {
        let c = &d.chains[ci];
        let Some(f) = c.fork else { continue };
        let (Some(parent), Some(tail)) = (f.parent, f.tail) else {
            continue;
        };
        if f.depth == 0 || c.reqs.is_empty() {
            continue;
        }
        let first = &reqs[c.reqs[0]];
        let t1 = c
            .reqs
            .iter()
            .map(|&p| reqs[p].end())
            .fold(f64::NEG_INFINITY, f64::max);
        let key = (parent, reqs[tail].outer);
        if !buckets.contains_key(&key) {
            keys.push(key);
        }
        buckets
            .entry(key)
            .or_default()
            .push((first.t, t1, first.outer, ci));
    }
    let mut groups: Vec<Vec<Cand>> = vec![];
    for key in keys {
        groups.extend(
            overlap_components(&buckets[&key])
                .into_iter()
                .filter(|g| g.len() >= min),
        );
    }
    let start = |g: &Vec<Cand>| {
        g.iter()
            .map(|c| (c.0, c.2))
            .min_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)))
            .unwrap()
    };
    groups.sort_by(|a, b| {
        let (sa, sb) = (start(a), start(b));
        sa.0.total_cmp(&sb.0).then(sa.1.cmp(&sb.1))
    });
    for (g, mut comp) in groups.into_iter().enumerate() {
        comp.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.2.cmp(&b.2)));
        for (m, c) in comp.iter().enumerate() {
            out.insert(c.3, (g, m));
        }
    }
    out
}

/// Connected components of `[t0, t1)` overlap (touching intervals do not overlap).
fn overlap_components(c: &[(f64, f64, usize, usize)]) -> Vec<Vec<(f64, f64, usize, usize)>> {
    let mut order: Vec<usize> = (0..c.len()).collect();
    order.sort_by(|&a, &b| c[a].0.total_cmp(&c[b].0).then(c[a].2.cmp(&c[b].2)));
    let mut parent: Vec<usize> = (0..c.len()).collect();
    fn find(p: &mut [usize], mut x: usize) -> usize {
        while p[x] != x {
            p[x] = p[p[x]];
            x = p[x];
        }
        x
    }
    // Min-heap of (end, index); f64 ends are finite here, ordered through their bits.
    let key = |x: f64| {
        let b = x.to_bits() as i64;
        b ^ (((b >> 63) as u64) >> 1) as i64
    };
    let mut active: BinaryHeap<Reverse<(i64, usize)>> = BinaryHeap::new();
    for &i in &order {
        let t0 = c[i].0;
        while let Some(&Reverse((e, _))) = active.peek() {
            if e <= key(t0) {
                active.pop();
            } else {
                break;
            }
        }
        if let Some(&Reverse((_, j))) = active.peek() {
            let (ri, rj) = (find(&mut parent, i), find(&mut parent, j));
            parent[ri] = rj;
        }
        active.push(Reverse((key(c[i].1), i)));
    }
    let mut roots: Vec<usize> = vec![];
    let mut comps: HashMap<usize, Vec<(f64, f64, usize, usize)>> = HashMap::new();
    for (i, x) in c.iter().enumerate() {
        let r = find(&mut parent, i);
        if !comps.contains_key(&r) {
            roots.push(r);
        }
        comps.entry(r).or_default().push(*x);
    }
    roots
        .into_iter()
        .map(|r| comps.remove(&r).unwrap())
        .collect()
}

/// A short sidecar: cross-model, or a small fresh context.
fn is_aux(chain: &[&Req], main_peak: u64, main_model: Option<&str>, k: &Knobs) -> bool {
    if chain.is_empty() || chain.len() > k.aux_max_requests {
        return false;
    }
    let first = chain[0];
    if k.aux_cross_model && main_model.is_some_and(|m| m != first.model) {
        return true;
    }
    let threshold = k
        .aux_isl_floor
        .max((k.aux_isl_ratio * main_peak as f64) as u64);
    first.input < threshold
}

/// A single large-input, short-output request on the main model (compaction, summary).
fn is_reduction(chain: &[&Req], k: &Knobs) -> bool {
    if k.reduction_osl_max == 0 || chain.len() != 1 {
        return false;
    }
    let r = chain[0];
    r.output > 0
        && r.output < k.reduction_osl_max
        && r.input >= k.aux_isl_floor
        && r.input as f64 > k.reduction_ratio * r.output as f64
}

/// The leading request if it is a preamble (see the module docs), and the rest in `outer`
/// order.
fn split_preamble(reqs: &[Req], subset: &[usize]) -> (Option<usize>, Vec<usize>) {
    if subset.len() < 2 {
        return (None, subset.to_vec());
    }
    let mut ordered = subset.to_vec();
    ordered.sort_by(|&a, &b| {
        reqs[a]
            .t
            .total_cmp(&reqs[b].t)
            .then(reqs[a].outer.cmp(&reqs[b].outer))
    });
    let first = &reqs[ordered[0]];
    if first.hash.is_empty() {
        return (None, subset.to_vec());
    }
    let rest = &ordered[1..];
    if rest.iter().any(|&o| lcp(first.hash, reqs[o].hash) > 0) {
        return (None, subset.to_vec());
    }
    if first.output > TITLE_GEN_MAX_OUTPUT {
        let blocks: HashSet<u32> = rest.iter().flat_map(|&o| reqs[o].hash).copied().collect();
        if first.hash.iter().any(|h| blocks.contains(h)) {
            return (None, subset.to_vec());
        }
    }
    let mut rest = rest.to_vec();
    rest.sort_by_key(|&o| reqs[o].outer);
    (Some(ordered[0]), rest)
}

/// Split one request list (`reqs`, in `outer` order) into its main chain and worker chains.
/// `None` when detection is off or finds no worker; the caller then keeps its own order.
pub fn split(reqs: &[Req], k: &Knobs) -> Option<Split> {
    if !k.split || reqs.len() < 2 {
        return None;
    }
    let all: Vec<usize> = (0..reqs.len()).collect();
    let (preamble, rest) = split_preamble(reqs, &all);
    if rest.is_empty() {
        return None;
    }
    let d = detect(reqs, &rest, k);
    if d.workers.is_empty() {
        return None;
    }
    let main_chain = &d.chains[d.main].reqs;
    let main_peak = main_chain.iter().map(|&p| reqs[p].input).max().unwrap_or(0);
    let main_model = main_chain.first().map(|&p| reqs[p].model);
    let groups = worker_groups(reqs, &d, k.worker_group_min);
    let mut workers = vec![];
    for (n, &ci) in d.workers.iter().enumerate() {
        let chain: Vec<&Req> = d.chains[ci].reqs.iter().map(|&p| &reqs[p]).collect();
        let aux = is_aux(&chain, main_peak, main_model, k) || is_reduction(&chain, k);
        let suffix = match (aux, groups.get(&ci)) {
            (true, _) => format!("aux:{n:03}"),
            (false, Some((g, m))) => format!("wg:{g:03}_{m:03}"),
            (false, None) => format!("fa:{n:03}"),
        };
        workers.push((suffix, d.chains[ci].reqs.clone()));
    }
    let mut main = main_chain.clone();
    if let Some(p) = preamble {
        main.push(p);
        main.sort_by(|&a, &b| {
            reqs[a]
                .t
                .total_cmp(&reqs[b].t)
                .then(reqs[a].outer.cmp(&reqs[b].outer))
        });
    }
    let base = main_chain
        .iter()
        .copied()
        .find(|&p| !reqs[p].hash.is_empty());
    Some(Split {
        main,
        workers,
        seams: d.seams,
        base,
    })
}

/// Hash-list LCP (for callers deciding a chain's declared system prefix).
pub fn common_prefix(a: &[u32], b: &[u32]) -> usize {
    lcp(a, b)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r<'a>(outer: usize, t: f64, api: f64, hash: &'a [u32]) -> Req<'a> {
        Req {
            outer,
            t,
            api_time: api,
            hash,
            model: "m",
            input: 64 * hash.len() as u64 * 1000,
            output: 5000,
        }
    }

    #[test]
    fn env_knobs_parse_and_reject() {
        let k = Knobs::from_vars(|k| match k {
            "AIPERF_DATASET_WEKA_SPLIT_FLATTENED_AGENTS" => Some("false".into()),
            "AIPERF_DATASET_WEKA_WORKER_GROUP_MIN" => Some("0".into()),
            _ => None,
        })
        .unwrap();
        assert!(!k.split);
        assert_eq!(k.worker_group_min, 0);
        assert_eq!(k.aux_isl_floor, 16384);
        let e = Knobs::from_vars(|k| {
            (k == "AIPERF_DATASET_WEKA_SEAM_MIN_OVERLAP_RATIO").then(|| "2".into())
        })
        .unwrap_err();
        assert!(
            e.contains("AIPERF_DATASET_WEKA_SEAM_MIN_OVERLAP_RATIO"),
            "{e}"
        );
    }

    /// The flowchart of AIPerf's weka-trace tutorial: main [1,2,3], worker A [1,2,50,51],
    /// worker B [1,2,60,61], main [1,2,3,4,5].
    #[test]
    fn tutorial_fan_out() {
        let h = [
            vec![1, 2, 3],
            vec![1, 2, 50, 51],
            vec![1, 2, 60, 61],
            vec![1, 2, 3, 4, 5],
        ];
        let reqs = vec![
            r(0, 0.0, 1.0, &h[0]),
            r(1, 2.0, 8.0, &h[1]),
            r(2, 2.5, 4.0, &h[2]),
            r(3, 9.0, 1.0, &h[3]),
        ];
        let s = split(&reqs, &Knobs::default()).unwrap();
        assert_eq!(s.main, vec![0, 3]);
        let names: Vec<&str> = s.workers.iter().map(|w| w.0.as_str()).collect();
        assert_eq!(names, ["fa:000", "fa:001"]);
        assert_eq!(s.workers[0].1, vec![1]);
        assert_eq!(s.workers[1].1, vec![2]);
        assert!(split(
            &reqs,
            &Knobs {
                split: false,
                ..Knobs::default()
            }
        )
        .is_none());
    }

    /// A compaction (shrink) whose longer state is never touched again is a seam: no split.
    #[test]
    fn compaction_is_a_seam() {
        let h = [vec![1, 2, 3, 4], vec![1, 2, 9], vec![1, 2, 9, 10]];
        let reqs = vec![
            r(0, 0.0, 1.0, &h[0]),
            r(1, 2.0, 1.0, &h[1]),
            r(2, 4.0, 1.0, &h[2]),
        ];
        assert!(split(&reqs, &Knobs::default()).is_none());
        let d = detect(&reqs, &[0, 1, 2], &Knobs::default());
        assert_eq!(d.seams, 1);
        assert_eq!(d.chains[d.main].reqs, vec![0, 1, 2]);
    }
}
