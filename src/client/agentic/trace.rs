//! Weka-format coding-agent traces (`traces.jsonl`), held compactly.
//!
//! The real corpus has ~99k requests whose contexts reach ~990k tokens (15k hash ids each);
//! as plain `Vec<u32>` lists that would be gigabytes. Consecutive turns of one conversation
//! share long prefixes and their new blocks are consecutive first-seen ids, so each turn is
//! stored as "the first `lcp` ids of the previous turn, then these runs of consecutive ids"
//! in one arena per trace. Prompts are built from these ids at dispatch time (see
//! [`super::prompt`]); no text is ever held per request.
//!
//! Format facts (agentic.md §3.1): one JSON object per line with `id`, `block_size` (64),
//! `tool_tokens`, `system_tokens` and `requests`; a request row has `t`, `type` (`n`|`s`),
//! `in` (alias `output_length` for `out`), `out`, `hash_ids`, `api_time`, optional
//! `think_time`; a `subagent` row holds its own `requests` (times on the session clock).

use super::topology;
use serde::Deserialize;
use std::path::{Path, PathBuf};

/// Tokens per hash block (the corpus is captured with 64).
pub const BLOCK: u32 = 64;

/// A trace file could not be read.
#[derive(Debug, thiserror::Error)]
pub enum TraceError {
    #[error("{file}: {message}")]
    Parse { file: String, message: String },
    #[error("{file}: {source}")]
    Io {
        file: String,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "trace dataset {dataset} is not in the Hugging Face cache ({cache}): {why}\n  fetch it with: {fetch}"
    )]
    Missing {
        dataset: String,
        cache: String,
        why: String,
        fetch: String,
    },
}

/// A run of consecutive hash ids `start..start+len`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Run {
    /// First id of the run.
    pub start: u32,
    /// Number of ids.
    pub len: u32,
}

/// One request row of a conversation.
#[derive(Debug, Clone)]
pub struct Turn {
    /// Seconds from the session start (the recorded send time).
    pub t: f64,
    /// Recorded duration in seconds (end-to-start gaps are measured from `t + api_time`).
    pub api_time: f32,
    /// Prompt tokens (`in`): the request is built to exactly this many content tokens.
    pub input: u32,
    /// Completion tokens (`out`): sent as `max_completion_tokens`.
    pub output: u32,
    /// Ids shared with the previous turn of the same conversation (a prefix of its list).
    pub lcp: u32,
    /// This turn's ids after the shared prefix: `runs[run_from..run_to]` of the trace arena.
    pub run_from: u32,
    pub run_to: u32,
    /// Total ids of the turn (`lcp` + the runs' lengths).
    pub blocks: u32,
}

/// A child conversation spawned by a conversation: a subagent (`::sa:<agent_id>`), one of
/// the sibling chains flattened-agent detection splits off a subagent
/// (`::sa:<agent_id>:fa:NNN`, `:wg:G_M`, `:aux:NNN`) or off the top-level stream
/// (`::fa:NNN`, `::wg:G_M`, `::aux:NNN`); see [`super::topology`].
#[derive(Debug, Clone)]
pub struct Branch {
    /// Index of the parent turn it is spawned from (the last parent turn before it).
    pub anchor: usize,
    /// Recorded spawn time (session clock, seconds): the subagent row's `t`, or the first
    /// request of the earliest detected chain spawned with it. Branches with the same
    /// anchor and join share the earliest start, as AIPerf's one SPAWN branch per
    /// (anchor, join) group does. The child's first request is dispatched
    /// `child.turns[0].t - start` (at least 0) after the anchor turn completes.
    pub start: f64,
    /// Index of the parent turn that waits for it (the first parent turn after its recorded
    /// end); `None`: it runs in the background and only the tree's drain waits for it.
    pub join: Option<usize>,
    /// The child conversation (fresh context).
    pub child: Conv,
}

/// A conversation: the trace's root or a subagent (`<trace>::sa:<agent_id>`).
#[derive(Debug, Clone, Default)]
pub struct Conv {
    /// `""` for the root, `::sa:<agent_id>` for subagents, `::fa:000` etc. for detected
    /// chains (appended to the trace id).
    pub suffix: String,
    /// Blocks of turn 0 sent as the system message: the trace's (root) or the subagent
    /// entry's declared `ceil((tool_tokens + system_tokens) / 64)`, inherited by a detected
    /// chain only when its first hash ids start with the same blocks as its main chain's.
    pub system_blocks: u32,
    /// Its requests in recorded order.
    pub turns: Vec<Turn>,
    /// Subagents it spawns, by anchor order.
    pub branches: Vec<Branch>,
}

impl Conv {
    /// Requests in this conversation and all its descendants.
    pub fn request_count(&self) -> usize {
        self.turns.len()
            + self
                .branches
                .iter()
                .map(|b| b.child.request_count())
                .sum::<usize>()
    }
}

/// One trace: a session tree and the id arena its turns point into.
#[derive(Debug, Clone)]
pub struct Trace {
    /// The session id (`id`): the root conversation id.
    pub id: String,
    /// `ceil((tool_tokens + system_tokens) / 64)`: blocks of turn 0 sent as the system message.
    pub system_blocks: u32,
    /// The root conversation.
    pub root: Conv,
    /// Run arena for every turn's ids.
    pub runs: Vec<Run>,
    /// One more than the largest hash id (sizes the theoretical-cache seen-set).
    pub id_space: u32,
}

impl Trace {
    /// The full hash-id list of `turns[i]` of `conv` (turns before it reconstruct the prefix).
    pub fn hash_ids(&self, conv: &Conv, i: usize) -> Vec<u32> {
        let mut ids: Vec<u32> = Vec::new();
        for t in &conv.turns[..=i] {
            ids.truncate(t.lcp as usize);
            for r in &self.runs[t.run_from as usize..t.run_to as usize] {
                ids.extend(r.start..r.start + r.len);
            }
        }
        ids
    }

    /// Extend `ids` (the list of the previous turn of the same conversation, or empty) into
    /// the list of `turn`.
    pub fn advance(&self, ids: &mut Vec<u32>, turn: &Turn) {
        ids.truncate(turn.lcp as usize);
        for r in &self.runs[turn.run_from as usize..turn.run_to as usize] {
            ids.extend(r.start..r.start + r.len);
        }
    }

    /// Requests of the whole tree.
    pub fn request_count(&self) -> usize {
        self.root.request_count()
    }
}

/// A loaded corpus.
#[derive(Debug, Clone, Default)]
pub struct Corpus {
    pub traces: Vec<Trace>,
}

impl Corpus {
    /// Requests of all traces.
    pub fn request_count(&self) -> usize {
        self.traces.iter().map(Trace::request_count).sum()
    }
}

/// A row as written in the file (only the fields replay uses; others are ignored).
#[derive(Debug, Deserialize)]
struct RawRow {
    #[serde(default)]
    t: f64,
    #[serde(rename = "type", default)]
    kind: String,
    #[serde(rename = "in", default)]
    input: Option<u64>,
    #[serde(default)]
    out: Option<u64>,
    #[serde(default)]
    output_length: Option<u64>,
    #[serde(default)]
    hash_ids: Vec<u32>,
    #[serde(default)]
    api_time: Option<f64>,
    #[serde(default)]
    model: Option<String>,
    #[serde(default)]
    tool_tokens: Option<u64>,
    #[serde(default)]
    system_tokens: Option<u64>,
    #[serde(default)]
    agent_id: Option<String>,
    #[serde(default)]
    duration_ms: Option<f64>,
    #[serde(default)]
    requests: Vec<RawRow>,
}

#[derive(Debug, Deserialize)]
struct RawTrace {
    id: serde_json::Value,
    #[serde(default)]
    block_size: Option<u32>,
    #[serde(default)]
    tool_tokens: Option<u64>,
    #[serde(default)]
    system_tokens: Option<u64>,
    #[serde(default)]
    requests: Vec<RawRow>,
}

/// A request row with its position in its list and its start on the session clock.
#[derive(Clone, Copy)]
struct At<'a> {
    /// Index in the enclosing `requests` list (subagent rows included).
    outer: usize,
    /// Start, seconds on the session clock (subagent-relative times normalized).
    t: f64,
    row: &'a RawRow,
}

impl<'a> At<'a> {
    fn req(&self) -> topology::Req<'a> {
        topology::Req {
            outer: self.outer,
            t: self.t,
            api_time: self.row.api_time.unwrap_or(0.0),
            hash: &self.row.hash_ids,
            model: self.row.model.as_deref().unwrap_or(""),
            input: self.row.input.unwrap_or(0),
            output: self.row.out.or(self.row.output_length).unwrap_or(0),
        }
    }

    fn end(&self) -> f64 {
        self.req().end()
    }
}

/// `ceil((tool_tokens + system_tokens) / 64)`.
fn declared_blocks(tool: Option<u64>, system: Option<u64>) -> u32 {
    (tool.unwrap_or(0) + system.unwrap_or(0)).div_ceil(u64::from(BLOCK)) as u32
}

/// A detected chain's system blocks: the declared ones only when its first hash ids
/// provably start with the same declared blocks as its main chain's (AIPerf never
/// fabricates a system role for a thread that did not record the declared prefix).
fn chain_system_blocks(declared: u32, base: &[u32], first: &[u32]) -> u32 {
    let d = declared as usize;
    if d > 0 && first.len() >= d && base.len() >= d && first[..d] == base[..d] {
        declared
    } else {
        0
    }
}

/// The main chain and the detected worker chains of `rows` (in `outer` order); `None`
/// when detection is off or finds no second agent.
struct Chains<'a> {
    main: Vec<At<'a>>,
    /// (suffix such as `fa:000`, requests).
    workers: Vec<(String, Vec<At<'a>>)>,
    /// Hash ids of the detected main chain's first hash-bearing request.
    base: &'a [u32],
}

fn detect_chains<'a>(rows: &[At<'a>], knobs: &topology::Knobs) -> Option<Chains<'a>> {
    let reqs: Vec<topology::Req> = rows.iter().map(At::req).collect();
    let s = topology::split(&reqs, knobs)?;
    let base = s.base.map(|p| &rows[p].row.hash_ids[..]).unwrap_or(&[]);
    Some(Chains {
        main: s.main.iter().map(|&p| rows[p]).collect(),
        workers: s
            .workers
            .into_iter()
            .map(|(n, ps)| (n, ps.iter().map(|&p| rows[p]).collect()))
            .collect(),
        base,
    })
}

/// Builds one trace's arena while its rows are read.
struct Builder<'k> {
    runs: Vec<Run>,
    id_space: u32,
    /// Flattened-agent detection settings.
    knobs: &'k topology::Knobs,
}

impl Builder<'_> {
    /// Encode `row` (starting at `t`) relative to `prev` (the previous turn of the same
    /// conversation).
    fn turn(&mut self, row: &RawRow, t: f64, prev: &[u32]) -> Turn {
        let ids = &row.hash_ids;
        let lcp = prev.iter().zip(ids).take_while(|(a, b)| a == b).count();
        let from = self.runs.len() as u32;
        for &id in &ids[lcp..] {
            self.id_space = self.id_space.max(id.saturating_add(1));
            let own = self.runs.len() as u32 > from;
            match self.runs.last_mut() {
                Some(r) if own && r.start + r.len == id => r.len += 1,
                _ => self.runs.push(Run { start: id, len: 1 }),
            }
        }
        Turn {
            t,
            api_time: row.api_time.unwrap_or(0.0) as f32,
            input: row.input.unwrap_or(0).min(u64::from(u32::MAX)) as u32,
            output: row
                .out
                .or(row.output_length)
                .unwrap_or(0)
                .min(u64::from(u32::MAX)) as u32,
            lcp: lcp as u32,
            run_from: from,
            run_to: self.runs.len() as u32,
            blocks: ids.len() as u32,
        }
    }

    /// A conversation of `rows` in the given order.
    fn chain(&mut self, suffix: String, system_blocks: u32, rows: &[At]) -> Conv {
        let mut conv = Conv {
            suffix,
            system_blocks,
            ..Conv::default()
        };
        let mut prev: &[u32] = &[];
        for a in rows {
            conv.turns.push(self.turn(a.row, a.t, prev));
            prev = &a.row.hash_ids;
        }
        conv
    }

    /// The root conversation of a trace: its main chain, the subagents it spawns and the
    /// flattened agents detected among its top-level requests.
    fn root(&mut self, rows: &[RawRow], system_blocks: u32) -> Conv {
        let normals: Vec<At> = rows
            .iter()
            .enumerate()
            .filter(|(_, r)| r.kind != "subagent")
            .map(|(outer, row)| At {
                outer,
                t: row.t,
                row,
            })
            .collect();
        let (main, flats, base) = match detect_chains(&normals, self.knobs) {
            Some(c) => (c.main, c.workers, c.base),
            // No second agent (or detection off): the rows in file order.
            None => (normals, vec![], &[][..]),
        };
        let mut conv = self.chain(String::new(), system_blocks, &main);
        let pos: Vec<(usize, usize, f64)> = main
            .iter()
            .enumerate()
            .map(|(p, a)| (a.outer, p, a.t))
            .collect();
        // The last main turn recorded before `outer`.
        let anchor = |outer: usize| pos.iter().filter(|x| x.0 < outer).map(|x| x.1).max();
        // The first main turn after `outer` that starts at or after `end`.
        let mut by_outer = pos.clone();
        by_outer.sort_by_key(|x| x.0);
        let join = |outer: usize, end: f64| {
            by_outer
                .iter()
                .find(|x| x.0 > outer && x.2 + topology::EPS >= end)
                .map(|x| x.1)
        };
        let mut sa_branches: Vec<Branch> = vec![];
        let mut n_sub = 0;
        for (outer, row) in rows.iter().enumerate() {
            if row.kind != "subagent" {
                continue;
            }
            n_sub += 1;
            // No parent turn to spawn from: dropped (as AIPerf drops it).
            let Some(a) = anchor(outer) else { continue };
            let end = subagent_end(row);
            let j = join(outer, end);
            for child in self.subagent(row, n_sub) {
                sa_branches.push(Branch {
                    anchor: a,
                    join: j,
                    start: row.t,
                    child,
                });
            }
        }
        let mut flat_branches: Vec<Branch> = vec![];
        for (suffix, chain) in &flats {
            let first = chain[0];
            let end = chain.iter().map(At::end).fold(f64::NEG_INFINITY, f64::max);
            let sys = chain_system_blocks(system_blocks, base, &first.row.hash_ids);
            flat_branches.push(Branch {
                // Chains never drop: one recorded before any main turn hangs off turn 0.
                anchor: anchor(first.outer).unwrap_or(0),
                join: join(first.outer, end),
                start: first.t,
                child: self.chain(format!("::{suffix}"), sys, chain),
            });
        }
        share_group_start(&mut sa_branches);
        share_group_start(&mut flat_branches);
        conv.branches = sa_branches;
        conv.branches.extend(flat_branches);
        conv
    }

    /// The child conversations of a `subagent` row: its main chain (`::sa:<agent_id>`) and
    /// the sibling chains detected among its requests (`::sa:<agent_id>:fa:NNN`, …).
    fn subagent(&mut self, row: &RawRow, n: usize) -> Vec<Conv> {
        let agent = row
            .agent_id
            .clone()
            .unwrap_or_else(|| format!("subagent_{n:03}"));
        let suffix = format!("::sa:{agent}");
        let sys = declared_blocks(row.tool_tokens, row.system_tokens);
        let mut inner: Vec<At> = row
            .requests
            .iter()
            .enumerate()
            .filter(|(_, r)| r.kind != "subagent")
            .map(|(outer, r)| At {
                outer,
                // Older captures record inner times relative to the spawn.
                t: if r.t + topology::EPS < row.t {
                    row.t + r.t
                } else {
                    r.t
                },
                row: r,
            })
            .collect();
        if inner.is_empty() {
            return vec![];
        }
        let Some(c) = detect_chains(&inner, self.knobs) else {
            inner.sort_by(|a, b| a.t.total_cmp(&b.t).then(a.outer.cmp(&b.outer)));
            return vec![self.chain(suffix, sys, &inner)];
        };
        let mut out = vec![self.chain(suffix.clone(), sys, &c.main)];
        for (w, chain) in &c.workers {
            let first = chain
                .iter()
                .map(|a| &a.row.hash_ids[..])
                .find(|h| !h.is_empty())
                .unwrap_or(&[]);
            let s = chain_system_blocks(sys, c.base, first);
            out.push(self.chain(format!("{suffix}:{w}"), s, chain));
        }
        out
    }
}

/// Recorded end of a subagent: `t + duration_ms` (negative or non-finite durations count
/// as 0), else its requests' latest end, else its `t`.
fn subagent_end(row: &RawRow) -> f64 {
    if let Some(d) = row.duration_ms {
        let d = d / 1000.0;
        return row.t + if d.is_finite() && d > 0.0 { d } else { 0.0 };
    }
    row.requests
        .iter()
        .map(|r| {
            let t = if r.t + topology::EPS < row.t {
                row.t + r.t
            } else {
                r.t
            };
            t + r.api_time.filter(|x| x.is_finite()).unwrap_or(0.0).max(0.0)
        })
        .fold(None, |m: Option<f64>, e| Some(m.map_or(e, |m| m.max(e))))
        .unwrap_or(row.t)
}

/// Branches with the same anchor and join form one spawn group; each takes the group's
/// earliest start, so a child is dispatched at its recorded offset from the group's spawn.
fn share_group_start(branches: &mut [Branch]) {
    let mut first: std::collections::HashMap<(usize, Option<usize>), f64> = Default::default();
    for b in branches.iter() {
        let e = first.entry((b.anchor, b.join)).or_insert(b.start);
        *e = e.min(b.start);
    }
    for b in branches.iter_mut() {
        b.start = first[&(b.anchor, b.join)];
    }
}

fn parse_trace(line: &str, knobs: &topology::Knobs) -> Result<Trace, String> {
    let raw: RawTrace = serde_json::from_str(line).map_err(|e| e.to_string())?;
    let id = match &raw.id {
        serde_json::Value::String(s) => s.clone(),
        v => v.to_string(),
    };
    if let Some(bs) = raw.block_size {
        if bs != BLOCK {
            return Err(format!(
                "trace {id}: block_size {bs} (only {BLOCK} is supported)"
            ));
        }
    }
    let system_blocks = declared_blocks(raw.tool_tokens, raw.system_tokens);
    let mut b = Builder {
        runs: vec![],
        id_space: 0,
        knobs,
    };
    let root = b.root(&raw.requests, system_blocks);
    let mut runs = b.runs;
    runs.shrink_to_fit();
    Ok(Trace {
        id,
        system_blocks,
        root,
        runs,
        id_space: b.id_space,
    })
}

/// Parse JSONL text: one trace per non-blank line, in file order. Lines are parsed on all
/// cores; traces with no requests are skipped.
pub fn parse_jsonl(text: &str, file: &str) -> Result<Vec<Trace>, TraceError> {
    parse_jsonl_with(text, file, &topology::Knobs::default())
}

/// [`parse_jsonl`] with explicit flattened-agent detection settings.
pub fn parse_jsonl_with(
    text: &str,
    file: &str,
    knobs: &topology::Knobs,
) -> Result<Vec<Trace>, TraceError> {
    let lines: Vec<(usize, &str)> = text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .collect();
    let workers = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
        .min(lines.len().max(1));
    let chunk = lines.len().div_ceil(workers).max(1);
    let parts: Vec<Result<Vec<Trace>, TraceError>> = std::thread::scope(|s| {
        let handles: Vec<_> = lines
            .chunks(chunk)
            .map(|part| {
                s.spawn(move || {
                    part.iter()
                        .map(|&(i, l)| {
                            parse_trace(l, knobs).map_err(|message| TraceError::Parse {
                                file: format!("{file}:{}", i + 1),
                                message,
                            })
                        })
                        .collect::<Result<Vec<_>, _>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("trace parser thread"))
            .collect()
    });
    let mut out = Vec::with_capacity(lines.len());
    for p in parts {
        out.extend(p?.into_iter().filter(|t| !t.root.turns.is_empty()));
    }
    Ok(out)
}

/// Read a local `traces.jsonl` (or a `.parquet` export). The file is read in batches of
/// about 64 MiB of lines, each parsed on all cores, so its text is never held whole.
pub fn load_file(p: &Path, knobs: &topology::Knobs) -> Result<Corpus, TraceError> {
    use std::io::BufRead;
    let file = p.display().to_string();
    if p.extension().is_some_and(|e| e == "parquet") {
        return load_parquet(p, knobs);
    }
    let io = |source| TraceError::Io {
        file: file.clone(),
        source,
    };
    let f = std::fs::File::open(p).map_err(io)?;
    let mut r = std::io::BufReader::with_capacity(1 << 20, f);
    let mut traces = vec![];
    let mut batch = String::new();
    let mut first_line = 1;
    let mut line_no = 0;
    loop {
        let n = r.read_line(&mut batch).map_err(io)?;
        if n > 0 {
            line_no += 1;
        }
        if (n == 0 && !batch.is_empty()) || batch.len() >= 64 << 20 {
            let part =
                parse_jsonl_with(&batch, &file, knobs).map_err(|e| renumber(e, first_line - 1))?;
            traces.extend(part);
            batch.clear();
            first_line = line_no + 1;
        }
        if n == 0 {
            break;
        }
    }
    traces.shrink_to_fit();
    Ok(Corpus { traces })
}

/// Shift a parse error's line number by the lines of earlier batches.
fn renumber(e: TraceError, before: usize) -> TraceError {
    match e {
        TraceError::Parse { file, message } if before > 0 => {
            let file = match file.rsplit_once(':') {
                Some((f, n)) => match n.parse::<usize>() {
                    Ok(n) => format!("{f}:{}", n + before),
                    Err(_) => format!("{f}:{n}"),
                },
                None => file,
            };
            TraceError::Parse { file, message }
        }
        e => e,
    }
}

/// A parquet export of the corpus: each row's fields re-assembled into the JSON object.
fn load_parquet(p: &Path, knobs: &topology::Knobs) -> Result<Corpus, TraceError> {
    use parquet::file::reader::{FileReader, SerializedFileReader};
    let file = p.display().to_string();
    let err = |m: String| TraceError::Parse {
        file: file.clone(),
        message: m,
    };
    let f = std::fs::File::open(p).map_err(|source| TraceError::Io {
        file: file.clone(),
        source,
    })?;
    let reader = SerializedFileReader::new(f).map_err(|e| err(e.to_string()))?;
    let mut text = String::new();
    for r in reader.get_row_iter(None).map_err(|e| err(e.to_string()))? {
        let r = r.map_err(|e| err(e.to_string()))?;
        let obj: serde_json::Map<String, serde_json::Value> = r
            .get_column_iter()
            .map(|(k, v)| (k.clone(), field_json(v)))
            .collect();
        text.push_str(&serde_json::Value::Object(obj).to_string());
        text.push('\n');
    }
    Ok(Corpus {
        traces: parse_jsonl_with(&text, &file, knobs)?,
    })
}

/// A parquet value as JSON (the trace fields are numbers, strings, lists and structs).
fn field_json(f: &parquet::record::Field) -> serde_json::Value {
    use parquet::record::Field as F;
    use serde_json::json;
    match f {
        F::Null => serde_json::Value::Null,
        F::Bool(b) => json!(b),
        F::Byte(x) => json!(x),
        F::Short(x) => json!(x),
        F::Int(x) => json!(x),
        F::Long(x) => json!(x),
        F::UByte(x) => json!(x),
        F::UShort(x) => json!(x),
        F::UInt(x) => json!(x),
        F::ULong(x) => json!(x),
        F::Float(x) => json!(x),
        F::Double(x) => json!(x),
        F::Str(s) => json!(s),
        F::Group(r) => serde_json::Value::Object(
            r.get_column_iter()
                .map(|(k, v)| (k.clone(), field_json(v)))
                .collect(),
        ),
        F::ListInternal(l) => {
            serde_json::Value::Array(l.elements().iter().map(field_json).collect())
        }
        other => json!(other.to_string()),
    }
}

/// A trace dataset on the Hugging Face Hub.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HubTraces {
    /// Repo id, e.g. `semianalysisai/cc-traces-weka-062126`.
    pub repo: String,
}

impl HubTraces {
    /// The command that puts the dataset into the cache (what AIPerf's launcher runs).
    pub fn fetch_command(&self) -> String {
        format!("hf download --repo-type dataset {}", self.repo)
    }
}

/// Where traces come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TraceSource {
    /// A hub dataset (its `traces.jsonl`, or parquet files, from the hub cache).
    Hub(HubTraces),
    /// A local JSONL or parquet file.
    Local(PathBuf),
}

impl TraceSource {
    /// A local path if it exists, else a hub repo id (`semianalysisai/…`); the AIPerf loader
    /// names (`semianalysis_cc_traces_weka_062126[_256k]`) map to their repos.
    pub fn parse(s: &str) -> TraceSource {
        let p = Path::new(s);
        if p.exists() {
            return TraceSource::Local(p.to_path_buf());
        }
        let repo = match s.strip_prefix("semianalysis_cc_traces_weka_") {
            Some(rest) => format!("semianalysisai/cc-traces-weka-{}", rest.replace('_', "-")),
            None => s.to_string(),
        };
        TraceSource::Hub(HubTraces { repo })
    }

    /// The `dataset` block of `profile_export_aiperf.json`.
    pub fn describe(&self) -> (String, String) {
        match self {
            TraceSource::Hub(h) => ("public_dataset".into(), h.repo.clone()),
            TraceSource::Local(p) => ("file".into(), p.display().to_string()),
        }
    }
}

/// Files of a hub dataset in the cache: `*.jsonl` at a snapshot's top level (as
/// InferenceX's `trace_metadata.py` looks for them), else parquet files anywhere under it.
pub fn cached_files(h: &HubTraces) -> Vec<PathBuf> {
    let root =
        crate::tokenizer::hub_cache_dir().join(format!("datasets--{}", h.repo.replace('/', "--")));
    let main = std::fs::read_to_string(root.join("refs/main"))
        .map(|s| s.trim().to_string())
        .ok();
    let mut snaps: Vec<PathBuf> = std::fs::read_dir(root.join("snapshots"))
        .map(|rd| {
            rd.flatten()
                .map(|e| e.path())
                .filter(|p| p.is_dir())
                .collect()
        })
        .unwrap_or_default();
    snaps.sort_by_key(|p| {
        (
            p.file_name().and_then(|n| n.to_str()) != main.as_deref(),
            p.clone(),
        )
    });
    for s in snaps {
        let mut jsonl: Vec<PathBuf> = std::fs::read_dir(&s)
            .map(|rd| {
                rd.flatten()
                    .map(|e| e.path())
                    .filter(|p| p.extension().is_some_and(|e| e == "jsonl"))
                    .collect()
            })
            .unwrap_or_default();
        if !jsonl.is_empty() {
            jsonl.sort();
            return jsonl;
        }
        let mut pq = vec![];
        walk_parquet(&s, &mut pq);
        if !pq.is_empty() {
            pq.sort();
            return pq;
        }
    }
    vec![]
}

fn walk_parquet(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    for e in rd.flatten() {
        let p = e.path();
        if p.is_dir() {
            walk_parquet(&p, out);
        } else if p.extension().is_some_and(|e| e == "parquet") {
            out.push(p);
        }
    }
}

/// Load a corpus from wherever `src` points (downloading `traces.jsonl` unless
/// `HF_HUB_OFFLINE` is set).
pub async fn load(src: &TraceSource, knobs: &topology::Knobs) -> Result<Corpus, TraceError> {
    let knobs = knobs.clone();
    let files = match src {
        TraceSource::Local(p) => vec![p.clone()],
        TraceSource::Hub(h) => hub_files(h).await?,
    };
    tokio::task::spawn_blocking(move || {
        let mut c = Corpus::default();
        for f in files {
            c.traces.extend(load_file(&f, &knobs)?.traces);
        }
        Ok(c)
    })
    .await
    .expect("trace loader thread")
}

async fn hub_files(h: &HubTraces) -> Result<Vec<PathBuf>, TraceError> {
    let cached = cached_files(h);
    if !cached.is_empty() {
        return Ok(cached);
    }
    let missing = |why: String| TraceError::Missing {
        dataset: h.repo.clone(),
        cache: crate::tokenizer::hub_cache_dir().display().to_string(),
        why,
        fetch: h.fetch_command(),
    };
    if crate::tokenizer::hub_offline() {
        return Err(missing("HF_HUB_OFFLINE is set".into()));
    }
    use hf_hub::{Repo, RepoType};
    let api = crate::tokenizer::hub_api().map_err(|e| missing(e.to_string()))?;
    let repo = api.repo(Repo::new(h.repo.clone(), RepoType::Dataset));
    let path = repo
        .get("traces.jsonl")
        .await
        .map_err(|e| missing(format!("download of traces.jsonl failed: {e}")))?;
    Ok(vec![path])
}

#[cfg(test)]
mod tests {
    use super::*;

    const LINE: &str = r#"{"id":"s1","models":["m"],"block_size":64,"hash_id_scope":"local","tool_tokens":64,"system_tokens":64,"requests":[
      {"t":0.0,"type":"s","in":200,"out":10,"hash_ids":[0,1,2],"api_time":1.0},
      {"t":2.0,"type":"subagent","agent_id":"subagent_001_x","duration_ms":3000,"requests":[
         {"t":2.5,"type":"n","in":128,"out":5,"hash_ids":[0,1],"api_time":0.5},
         {"t":3.5,"type":"n","in":192,"out":5,"hash_ids":[0,1,9],"api_time":0.5,"think_time":0.5}]},
      {"t":6.0,"type":"n","in":320,"output_length":7,"hash_ids":[0,1,2,3,4],"api_time":1.0,"think_time":4.0},
      {"t":8.0,"type":"n","in":128,"out":7,"hash_ids":[0,7],"api_time":1.0,"think_time":1.0}]}"#;

    #[test]
    fn parses_tree_and_ids() {
        let line = LINE.replace('\n', "");
        let tr = parse_trace(&line, &topology::Knobs::default()).unwrap();
        assert_eq!(tr.id, "s1");
        assert_eq!(tr.system_blocks, 2);
        assert_eq!(tr.root.turns.len(), 3);
        assert_eq!(tr.root.turns[1].output, 7);
        assert_eq!(tr.hash_ids(&tr.root, 1), vec![0, 1, 2, 3, 4]);
        assert_eq!(tr.root.turns[1].lcp, 3);
        assert_eq!(tr.hash_ids(&tr.root, 2), vec![0, 7]);
        assert_eq!(tr.root.branches.len(), 1);
        let b = &tr.root.branches[0];
        assert_eq!((b.anchor, b.join), (0, Some(1)));
        assert_eq!(b.child.suffix, "::sa:subagent_001_x");
        assert_eq!(tr.hash_ids(&b.child, 1), vec![0, 1, 9]);
        assert_eq!(tr.id_space, 10);
        assert_eq!(tr.request_count(), 5);
    }

    /// Interleaved top-level streams (agent A with two requests, one-shot B) and a subagent
    /// whose requests hold two concurrent chains. Expected values worked by hand from the
    /// rules in `topology`'s docs (AIPerf's weka loader).
    const FLAT: &str = r#"{"id":"f1","block_size":64,"tool_tokens":64,"system_tokens":64,"requests":[
      {"t":0.0,"type":"n","model":"m","in":192,"out":10,"hash_ids":[0,1,2],"api_time":1.0},
      {"t":2.0,"type":"n","model":"m","in":256,"out":10,"hash_ids":[0,1,50,51],"api_time":8.0},
      {"t":2.2,"type":"subagent","agent_id":"sa1","duration_ms":3000,"requests":[
         {"t":2.5,"type":"n","model":"m","in":192,"out":5,"hash_ids":[0,1,70],"api_time":0.5},
         {"t":2.6,"type":"n","model":"m","in":256,"out":5,"hash_ids":[0,1,80,81],"api_time":1.0},
         {"t":3.5,"type":"n","model":"m","in":256,"out":5,"hash_ids":[0,1,70,71],"api_time":0.5},
         {"t":4.0,"type":"n","model":"m","in":320,"out":5,"hash_ids":[0,1,80,81,82],"api_time":0.5}]},
      {"t":2.5,"type":"n","model":"m","in":256,"out":10,"hash_ids":[0,1,60,61],"api_time":4.0},
      {"t":9.0,"type":"n","model":"m","in":320,"out":10,"hash_ids":[0,1,2,3,4],"api_time":1.0},
      {"t":11.0,"type":"n","model":"m","in":320,"out":10,"hash_ids":[0,1,50,51,52],"api_time":0.5},
      {"t":12.0,"type":"n","model":"m","in":384,"out":10,"hash_ids":[0,1,2,3,4,5],"api_time":1.0}]}"#;

    /// (suffix, anchor, join, start, first turn t, turns, system blocks) of a branch.
    type Shape = (String, usize, Option<usize>, f64, f64, usize, u32);

    fn shape(tr: &Trace) -> Vec<Shape> {
        tr.root
            .branches
            .iter()
            .map(|b| {
                let c = &b.child;
                let n = c.turns.len();
                (
                    c.suffix.clone(),
                    b.anchor,
                    b.join,
                    b.start,
                    c.turns[0].t,
                    n,
                    c.system_blocks,
                )
            })
            .collect()
    }

    #[test]
    fn flattened_agents_split_into_siblings() {
        let line = FLAT.replace('\n', "");
        let tr = parse_trace(&line, &topology::Knobs::default()).unwrap();
        let ts: Vec<f64> = tr.root.turns.iter().map(|t| t.t).collect();
        assert_eq!(ts, [0.0, 9.0, 12.0], "main chain");
        assert_eq!(tr.root.system_blocks, 2);
        assert_eq!(
            shape(&tr),
            [
                ("::sa:sa1".into(), 0, Some(1), 2.2, 2.5, 2, 0),
                ("::sa:sa1:fa:000".into(), 0, Some(1), 2.2, 2.6, 2, 0),
                ("::fa:000".into(), 0, Some(2), 2.0, 2.0, 2, 2),
                ("::aux:001".into(), 0, Some(1), 2.5, 2.5, 1, 2),
            ]
        );
        // Turns of a chain are encoded against the chain's own previous turn.
        let fa = &tr.root.branches[2].child;
        assert_eq!(tr.hash_ids(fa, 1), vec![0, 1, 50, 51, 52]);
        assert_eq!(fa.turns[1].lcp, 4);
        assert_eq!(tr.request_count(), 10);
    }

    #[test]
    fn split_off_keeps_one_stream() {
        let line = FLAT.replace('\n', "");
        let off = topology::Knobs {
            split: false,
            ..topology::Knobs::default()
        };
        let tr = parse_trace(&line, &off).unwrap();
        let ts: Vec<f64> = tr.root.turns.iter().map(|t| t.t).collect();
        assert_eq!(ts, [0.0, 2.0, 2.5, 9.0, 11.0, 12.0]);
        assert_eq!(
            shape(&tr),
            [("::sa:sa1".into(), 1, Some(3), 2.2, 2.5, 4, 0)]
        );
        assert_eq!(tr.request_count(), 10);
    }

    #[test]
    fn loader_names_map_to_repos() {
        assert_eq!(
            TraceSource::parse("semianalysis_cc_traces_weka_062126_256k"),
            TraceSource::Hub(HubTraces {
                repo: "semianalysisai/cc-traces-weka-062126-256k".into()
            })
        );
    }
}
