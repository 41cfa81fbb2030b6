//! Deterministic synthetic traces in the exact Weka format, for tests and benchmarks.
//!
//! The real corpora cannot be shipped in the repository, and the tests must exercise every
//! feature the replay handles: subagents (joined and background), think times (some beyond
//! the 300 s per-tree cap), prefixes shared across turns and with subagents (the system
//! blocks), context compaction (a turn whose list is not an extension of the last), partial
//! last blocks, requests with `in + out > 256k` (what the `-256k` variant drops), and
//! flattened agent fan-outs (interleaved top-level streams that the loader splits into
//! `::fa:`/`::wg:`/`::aux:` siblings, see [`super::topology`]).
//! `runner agentic synth` writes them; the `real` shape has the real corpus' size (393
//! traces, ~99k requests, contexts up to 990k tokens) for the memory/load benchmark.

use std::fmt::Write as _;
use std::io::Write as _;

/// Shape of a synthetic corpus.
#[derive(Debug, Clone)]
pub struct SynthParams {
    /// Number of traces (sessions).
    pub traces: usize,
    /// Top-level turns per trace, inclusive range.
    pub turns: (u32, u32),
    /// Per-trace context caps (tokens) are drawn from this range; a turn that would exceed
    /// its trace's cap compacts the context (the next list starts over after the system).
    pub max_context: (u32, u32),
    /// Every this-many-th trace instead gets `long_context` as its cap (0 = none): it grows
    /// past 256k tokens.
    pub long_every: usize,
    /// The long traces' cap (tokens).
    pub long_context: u32,
    /// New user/tool-result blocks per turn, inclusive range.
    pub user_blocks: (u32, u32),
    /// Completion tokens per turn, inclusive range.
    pub output: (u32, u32),
    /// Probability that a parent turn spawns a subagent.
    pub subagent_prob: f64,
    /// Inner requests per subagent, inclusive range.
    pub subagent_turns: (u32, u32),
    /// Probability that a parent turn fans out into flattened agents: top-level requests
    /// with no subagent row, forked from the system prefix and interleaved with each other
    /// before the parent's next turn (what AIPerf's flattened-agent detection splits into
    /// `::fa:`/`::wg:`/`::aux:` siblings).
    pub flat_prob: f64,
    /// Agents per fan-out, inclusive range (3 or more overlapping ones form a worker group).
    pub flat_agents: (u32, u32),
    /// Requests per flattened agent, inclusive range (one-request agents with small
    /// inputs are sidecars, `::aux:`).
    pub flat_turns: (u32, u32),
    /// Multiplies every recorded time (think and api), so tests can run traces quickly.
    pub time_scale: f64,
    /// Probability of a long (400–900 s) idle gap before a parent turn.
    pub long_think_prob: f64,
    /// `system_tokens` and `tool_tokens` of every trace (their blocks are the shared
    /// system prefix).
    pub system_tokens: u32,
    pub tool_tokens: u32,
    /// Seed of everything.
    pub seed: u64,
}

impl SynthParams {
    /// A small corpus for tests: 16 traces of 6–24 turns, two of them longer than 256k.
    pub fn small() -> Self {
        SynthParams {
            traces: 16,
            turns: (6, 24),
            max_context: (20_000, 120_000),
            long_every: 8,
            long_context: 300_000,
            user_blocks: (1, 40),
            output: (16, 600),
            subagent_prob: 0.15,
            subagent_turns: (2, 5),
            flat_prob: 0.12,
            flat_agents: (1, 4),
            flat_turns: (1, 3),
            time_scale: 1.0,
            long_think_prob: 0.02,
            system_tokens: SYSTEM_TOKENS,
            tool_tokens: TOOL_TOKENS,
            seed: 42,
        }
    }

    /// Tiny contexts (under 2.5k tokens) and fast times, for real engines with small
    /// context windows.
    pub fn tiny() -> Self {
        SynthParams {
            traces: 6,
            turns: (5, 10),
            max_context: (600, 2500),
            long_every: 0,
            long_context: 0,
            user_blocks: (1, 6),
            output: (4, 24),
            subagent_prob: 0.3,
            subagent_turns: (2, 3),
            flat_prob: 0.0,
            flat_agents: (1, 3),
            flat_turns: (1, 2),
            time_scale: 0.02,
            long_think_prob: 0.0,
            system_tokens: 128,
            tool_tokens: 64,
            seed: 42,
        }
    }

    /// The real corpus' shape: 393 traces, ~99k requests, contexts up to 990k tokens.
    pub fn real() -> Self {
        SynthParams {
            traces: 393,
            turns: (120, 300),
            max_context: (30_000, 140_000),
            long_every: 20,
            long_context: 990_016,
            user_blocks: (1, 16),
            output: (16, 900),
            subagent_prob: 0.05,
            subagent_turns: (2, 6),
            flat_prob: 0.05,
            flat_agents: (1, 4),
            flat_turns: (1, 4),
            time_scale: 1.0,
            long_think_prob: 0.005,
            system_tokens: SYSTEM_TOKENS,
            tool_tokens: TOOL_TOKENS,
            seed: 42,
        }
    }

    /// A preset by name (`small`, `real`, `tiny`).
    pub fn preset(name: &str) -> Option<Self> {
        match name {
            "small" => Some(Self::small()),
            "real" => Some(Self::real()),
            "tiny" => Some(Self::tiny()),
            _ => None,
        }
    }
}

/// SplitMix64: small, fast, and fully determined by its seed.
#[derive(Debug, Clone)]
pub struct SplitMix(pub u64);

impl SplitMix {
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// Uniform in [0, 1).
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
    /// Uniform in `lo..=hi`.
    pub fn range(&mut self, (lo, hi): (u32, u32)) -> u32 {
        lo + (self.next_u64() % u64::from(hi - lo + 1)) as u32
    }
}

/// One generated row before it is written.
struct Row {
    t: f64,
    input: u32,
    out: u32,
    ids: Vec<u32>,
    api: f64,
    think: Option<f64>,
    streaming: bool,
}

/// A generated subagent (written as a `subagent` row holding its requests).
struct Sub {
    t: f64,
    agent_id: String,
    rows: Vec<Row>,
}

enum Item {
    /// A parent (main agent) request.
    Row(Row),
    Sub(Sub),
    /// A flattened agent's request, written as a top-level row.
    Flat(Row),
}

const MODEL: &str = "claude-sonnet-4-5";
const SYSTEM_TOKENS: u32 = 2304;
const TOOL_TOKENS: u32 = 1856;

fn api_time(input: u32, out: u32, scale: f64) -> f64 {
    ((0.4 + f64::from(out) / 60.0 + f64::from(input) / 400_000.0) * scale * 1000.0).round() / 1000.0
}

/// Prompt tokens for a list of `blocks` ids: a full list, or one whose last block is partial.
fn input_len(rng: &mut SplitMix, blocks: usize) -> u32 {
    let full = blocks as u32 * 64;
    if rng.unit() < 0.3 {
        full - rng.range((1, 63))
    } else {
        full
    }
}

/// Write one trace as a JSON line.
fn trace_line(p: &SynthParams, index: usize) -> String {
    let mut rng = SplitMix(p.seed ^ (index as u64).wrapping_mul(0xA24B_AED4_963E_E407));
    let id = format!("synth-{:016x}", rng.next_u64());
    let sys_blocks = (p.system_tokens + p.tool_tokens).div_ceil(64);
    let long = p.long_every > 0 && index % p.long_every == p.long_every - 1;
    let cap = if long {
        p.long_context
    } else {
        rng.range(p.max_context)
    };
    let mut next_id: u32 = sys_blocks;
    let system: Vec<u32> = (0..sys_blocks).collect();
    let turns = rng.range(p.turns);
    let mut items: Vec<Item> = vec![];
    let mut ctx: Vec<u32> = system.clone();
    let mut t = 0.0f64;
    let mut sub_count = 0;
    for k in 0..turns {
        // The previous answer becomes part of this prompt.
        if let Some(Item::Row(prev)) = items.iter().rev().find(|i| matches!(i, Item::Row(_))) {
            let a = prev.out.div_ceil(64);
            ctx.extend(next_id..next_id + a);
            next_id += a;
        }
        let mut u = rng.range(p.user_blocks);
        if long && k == 0 {
            // A long session opens with a large paste: it crosses 256k within a few turns.
            u = (cap / 64) * 17 / 20 - ctx.len() as u32;
        }
        ctx.extend(next_id..next_id + u);
        next_id += u;
        let out = rng.range(p.output);
        if (ctx.len() as u32) * 64 + out > cap {
            // Compaction: a fresh list after the system, with a summary.
            ctx.truncate(sys_blocks as usize);
            let s = rng.range((4, 30)).min((cap / 128).max(1));
            ctx.extend(next_id..next_id + s);
            next_id += s;
        }
        let input = input_len(&mut rng, ctx.len());
        let api = api_time(input, out, p.time_scale);
        items.push(Item::Row(Row {
            t,
            input,
            out,
            ids: ctx.clone(),
            api,
            think: None,
            streaming: k % 3 != 1,
        }));
        t += api;
        // A flattened fan-out: agents forked from the system prefix, started shortly after
        // this turn, their requests interleaved; the next parent turn waits for them.
        if k + 1 < turns && rng.unit() < p.flat_prob {
            let mut rows: Vec<Row> = vec![];
            let mut end = t;
            for _ in 0..rng.range(p.flat_agents) {
                let mut ft = t + (0.05 + 1.5 * rng.unit()) * p.time_scale;
                let mut fctx: Vec<u32> = system.clone();
                let mut prev_out: u32 = 0;
                for _ in 0..rng.range(p.flat_turns) {
                    let a = prev_out.div_ceil(64);
                    let u = rng.range(p.user_blocks).max(1);
                    fctx.extend(next_id..next_id + a + u);
                    next_id += a + u;
                    let out = rng.range((16, 300));
                    let input = input_len(&mut rng, fctx.len());
                    let api = api_time(input, out, p.time_scale);
                    rows.push(Row {
                        t: (ft * 1000.0).round() / 1000.0,
                        input,
                        out,
                        ids: fctx.clone(),
                        api,
                        think: None,
                        streaming: true,
                    });
                    end = end.max(ft + api);
                    ft += api + (0.1 + 1.0 * rng.unit()) * p.time_scale;
                    prev_out = out;
                }
            }
            rows.sort_by(|a, b| a.t.total_cmp(&b.t));
            items.extend(rows.into_iter().map(Item::Flat));
            t = end;
        }
        // Subagents (the last turn's runs in the background).
        if rng.unit() < p.subagent_prob {
            sub_count += 1;
            let mut st = t + (0.2 + 1.8 * rng.unit()) * p.time_scale;
            let agent_id = format!("subagent_{sub_count:03}_{:08x}", rng.next_u64() as u32);
            let start = st;
            let mut sctx: Vec<u32> = system.clone();
            let mut rows = vec![];
            for _ in 0..rng.range(p.subagent_turns) {
                if let Some(prev) = rows.last() {
                    let prev: &Row = prev;
                    let a = prev.out.div_ceil(64);
                    sctx.extend(next_id..next_id + a);
                    next_id += a;
                }
                let u = rng.range((1, 12));
                sctx.extend(next_id..next_id + u);
                next_id += u;
                let out = rng.range((16, 300));
                let input = input_len(&mut rng, sctx.len());
                let api = api_time(input, out, p.time_scale);
                rows.push(Row {
                    t: (st * 1000.0).round() / 1000.0,
                    input,
                    out,
                    ids: sctx.clone(),
                    api,
                    think: None,
                    streaming: false,
                });
                st += api + (0.1 + 2.0 * rng.unit()) * p.time_scale;
            }
            items.push(Item::Sub(Sub {
                t: (start * 1000.0).round() / 1000.0,
                agent_id,
                rows,
            }));
            if k + 1 < turns {
                t = t.max(st);
            }
        }
        let think = if rng.unit() < p.long_think_prob {
            400.0 + 500.0 * rng.unit()
        } else {
            0.5 + 14.5 * rng.unit() * rng.unit()
        };
        t += think * p.time_scale;
        t = (t * 1000.0).round() / 1000.0;
    }
    // think_time: the gap from the previous chronological row's end (the proxy's rule).
    let mut all: Vec<&mut Row> = vec![];
    for it in &mut items {
        match it {
            Item::Row(r) | Item::Flat(r) => all.push(r),
            Item::Sub(s) => all.extend(s.rows.iter_mut()),
        }
    }
    all.sort_by(|a, b| a.t.total_cmp(&b.t));
    let mut prev_end: Option<f64> = None;
    for r in all {
        if let Some(e) = prev_end {
            r.think = Some(((r.t - e).max(0.0) * 1000.0).round() / 1000.0);
        }
        prev_end = Some(r.t + r.api);
    }
    let mut s = String::with_capacity(1 << 16);
    let _ = write!(
        s,
        r#"{{"id":"{id}","models":["{MODEL}"],"block_size":64,"hash_id_scope":"local","tool_tokens":{},"system_tokens":{},"requests":["#,
        p.tool_tokens, p.system_tokens
    );
    for (i, it) in items.iter().enumerate() {
        if i > 0 {
            s.push(',');
        }
        match it {
            Item::Row(r) | Item::Flat(r) => write_row(&mut s, r, true),
            Item::Sub(sub) => {
                let end = sub.rows.last().map_or(sub.t, |r| r.t + r.api);
                let total: u64 = sub
                    .rows
                    .iter()
                    .map(|r| u64::from(r.input) + u64::from(r.out))
                    .sum();
                let _ = write!(
                    s,
                    r#"{{"t":{},"type":"subagent","agent_id":"{}","subagent_type":"Subagent","duration_ms":{},"total_tokens":{total},"tool_use_count":null,"status":"completed","models":["{MODEL}"],"requests":["#,
                    sub.t,
                    sub.agent_id,
                    ((end - sub.t) * 1000.0).round() as u64
                );
                for (j, r) in sub.rows.iter().enumerate() {
                    if j > 0 {
                        s.push(',');
                    }
                    write_row(&mut s, r, false);
                }
                s.push_str("]}");
            }
        }
    }
    s.push_str("]}");
    s
}

fn write_row(s: &mut String, r: &Row, top: bool) {
    let kind = if top && r.streaming { "s" } else { "n" };
    let _ = write!(
        s,
        r#"{{"t":{},"type":"{kind}","model":"{MODEL}","in":{},"out":{},"hash_ids":["#,
        r.t, r.input, r.out
    );
    for (i, id) in r.ids.iter().enumerate() {
        if i > 0 {
            s.push(',');
        }
        let _ = write!(s, "{id}");
    }
    let _ = write!(s, r#"],"api_time":{}"#, r.api);
    if let Some(th) = r.think {
        let _ = write!(s, r#","think_time":{th}"#);
    }
    if top && r.streaming {
        let _ = write!(
            s,
            r#","ttft":{}"#,
            ((r.api * 0.1) * 1000.0).round() / 1000.0
        );
    }
    s.push_str(r#","input_types":["tool_result"],"output_types":["text"],"stop":"tool_use"}"#);
}

/// Write the corpus as JSONL to `w` (traces generated on all cores, written in order).
pub fn write(p: &SynthParams, w: &mut impl std::io::Write) -> std::io::Result<()> {
    let workers = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    let mut next = 0;
    while next < p.traces {
        let batch: Vec<usize> = (next..p.traces.min(next + workers * 4)).collect();
        next += batch.len();
        let lines: Vec<String> = std::thread::scope(|s| {
            let hs: Vec<_> = batch
                .chunks(batch.len().div_ceil(workers))
                .map(|part| {
                    s.spawn(move || part.iter().map(|&i| trace_line(p, i)).collect::<Vec<_>>())
                })
                .collect();
            hs.into_iter()
                .flat_map(|h| h.join().expect("synth thread"))
                .collect()
        });
        for l in lines {
            w.write_all(l.as_bytes())?;
            w.write_all(b"\n")?;
        }
    }
    w.flush()
}

/// The `-256k` variant's rule: drop requests with `in + out > 256_000`, drop subagents left
/// empty, and shift times so the first survivor is at 0. Works on JSON lines.
pub fn filter_256k(line: &str) -> serde_json::Result<String> {
    let mut v: serde_json::Value = serde_json::from_str(line)?;
    fn keep(r: &serde_json::Value) -> bool {
        let n = |k: &str| r.get(k).and_then(|x| x.as_u64()).unwrap_or(0);
        n("in") + n("out").max(n("output_length")) <= 256_000
    }
    let mut first: Option<f64> = None;
    if let Some(reqs) = v.get_mut("requests").and_then(|r| r.as_array_mut()) {
        reqs.retain_mut(|r| {
            if r.get("type").and_then(|t| t.as_str()) == Some("subagent") {
                if let Some(inner) = r.get_mut("requests").and_then(|x| x.as_array_mut()) {
                    inner.retain(keep);
                    return !inner.is_empty();
                }
                false
            } else {
                keep(r)
            }
        });
        for r in reqs.iter() {
            let t = r.get("t").and_then(|t| t.as_f64()).unwrap_or(0.0);
            first = Some(first.map_or(t, |f: f64| f.min(t)));
        }
        let shift = first.unwrap_or(0.0);
        for r in reqs.iter_mut() {
            shift_t(r, shift);
        }
    }
    serde_json::to_string(&v)
}

fn shift_t(r: &mut serde_json::Value, by: f64) {
    if let Some(t) = r.get("t").and_then(|t| t.as_f64()) {
        r["t"] = serde_json::json!(((t - by) * 1000.0).round() / 1000.0);
    }
    if let Some(inner) = r.get_mut("requests").and_then(|x| x.as_array_mut()) {
        for i in inner {
            shift_t(i, by);
        }
    }
}

/// Write the corpus to a file (`traces.jsonl`), optionally as the 256k variant.
pub fn write_file(
    p: &SynthParams,
    path: &std::path::Path,
    variant_256k: bool,
) -> std::io::Result<()> {
    if let Some(d) = path.parent() {
        std::fs::create_dir_all(d)?;
    }
    let f = std::fs::File::create(path)?;
    let mut w = std::io::BufWriter::with_capacity(1 << 20, f);
    if !variant_256k {
        return write(p, &mut w);
    }
    let mut buf = Vec::new();
    write(p, &mut buf)?;
    for line in String::from_utf8_lossy(&buf).lines() {
        let l = filter_256k(line).map_err(std::io::Error::other)?;
        w.write_all(l.as_bytes())?;
        w.write_all(b"\n")?;
    }
    w.flush()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::agentic::trace::parse_jsonl;

    #[test]
    fn small_corpus_has_every_feature_and_is_deterministic() {
        let p = SynthParams::small();
        let (mut a, mut b) = (vec![], vec![]);
        write(&p, &mut a).unwrap();
        write(&p, &mut b).unwrap();
        assert_eq!(a, b);
        let text = String::from_utf8(a).unwrap();
        let traces = parse_jsonl(&text, "synth").unwrap();
        assert_eq!(traces.len(), 16);
        let subs: usize = traces.iter().map(|t| t.root.branches.len()).sum();
        assert!(subs > 0, "subagents");
        assert!(traces
            .iter()
            .any(|t| t.root.branches.iter().any(|b| b.join.is_none())
                || t.root.branches.iter().any(|b| b.join.is_some())));
        let long = traces.iter().any(|t| {
            t.root
                .turns
                .iter()
                .any(|x| u64::from(x.input) + u64::from(x.output) > 256_000)
        });
        assert!(long, "some in+out > 256k");
        let names: Vec<&str> = traces
            .iter()
            .flat_map(|t| t.root.branches.iter().map(|b| b.child.suffix.as_str()))
            .collect();
        for kind in ["::fa:", "::wg:", "::aux:", "::sa:"] {
            assert!(
                names.iter().any(|n| n.starts_with(kind)),
                "{kind} in {names:?}"
            );
        }
        let compacted = traces
            .iter()
            .any(|t| t.root.turns.windows(2).any(|w| w[1].lcp < w[0].blocks));
        assert!(compacted, "a compaction turn");
        // The 256k filter keeps the rest.
        let f: Vec<String> = text.lines().map(|l| filter_256k(l).unwrap()).collect();
        let ft = parse_jsonl(&f.join("\n"), "f").unwrap();
        assert!(ft.iter().all(|t| t
            .root
            .turns
            .iter()
            .all(|x| u64::from(x.input) + u64::from(x.output) <= 256_000)));
        assert!(ft.iter().all(|t| t.root.turns[0].t == 0.0));
    }
}
