//! The simulated KV cache: a block-level prefix cache like vLLM's (and SGLang's radix cache
//! with `--page-size 64`), with an optional second, larger LRU level standing for a CPU
//! offload tier (vLLM's offloading connectors, SGLang's HiCache host pool).
//!
//! A prompt is cut into full blocks of `block-tokens` tokens; block `i` is named by a
//! chained hash of every token up to its end (the hash of block `i − 1` mixed with block
//! `i`'s tokens), so two prompts share a block exactly when they share the whole prefix up
//! to it. On admission the longest run of leading blocks found on the GPU level is a GPU
//! hit, the run continuing on the CPU level a CPU hit (loaded back, at a cost cheaper than
//! prefill), the rest is computed. At most `prompt − 1` tokens can hit: the last token is
//! always recomputed, as vLLM does. When a prompt's prefill ends, its blocks are stored on
//! the GPU level and written through to the CPU level.
//!
//! Both levels are exact LRUs over block hashes in O(1) per block (a slab-backed linked
//! list). A request's blocks are touched from its last block to its first, so under
//! pressure a conversation loses its tail before its shared head, as vLLM's free-block queue
//! (freed blocks appended in reverse) does.

use super::config::{KvCacheConfig, OffloadConfig};
use super::metrics::Metrics;
use super::model::{hash_push, mix};
use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::Arc;
use std::time::Duration;

/// Seed of the block-hash chain (any constant: it only names blocks inside one engine).
const BLOCK_SEED: u64 = 0xB10C_CA5E_0064_0000;

/// Hashes of every full block of `tokens`, chained (see the module doc).
pub fn block_hashes(tokens: &[u32], block: u32) -> Vec<u64> {
    let block = block.max(1) as usize;
    let mut out = Vec::with_capacity(tokens.len() / block);
    let mut h = mix(BLOCK_SEED);
    for chunk in tokens.chunks_exact(block) {
        for &t in chunk {
            h = hash_push(h, t);
        }
        out.push(h);
    }
    out
}

/// Block hashes are already well mixed: the map uses them as they are.
#[derive(Default)]
struct IdHasher(u64);

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 << 8) | u64::from(b);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

type IdMap = HashMap<u64, u32, BuildHasherDefault<IdHasher>>;

const NIL: u32 = u32::MAX;

struct Node {
    hash: u64,
    prev: u32,
    next: u32,
}

/// An LRU set of block hashes with a fixed capacity in blocks.
pub struct BlockLru {
    cap: usize,
    map: IdMap,
    nodes: Vec<Node>,
    /// Most recently used.
    head: u32,
    /// Least recently used (evicted first).
    tail: u32,
    /// Slots of evicted nodes, reused.
    free: Vec<u32>,
}

impl BlockLru {
    /// An empty LRU holding at most `cap` blocks (0 = holds nothing).
    pub fn new(cap: usize) -> Self {
        BlockLru {
            cap,
            map: IdMap::default(),
            nodes: Vec::new(),
            head: NIL,
            tail: NIL,
            free: Vec::new(),
        }
    }

    /// Blocks held now.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// Whether nothing is held.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// Capacity in blocks.
    pub fn capacity(&self) -> usize {
        self.cap
    }

    /// Whether `h` is held (without touching it).
    pub fn contains(&self, h: u64) -> bool {
        self.map.contains_key(&h)
    }

    fn unlink(&mut self, i: u32) {
        let (p, n) = {
            let x = &self.nodes[i as usize];
            (x.prev, x.next)
        };
        if p == NIL {
            self.head = n;
        } else {
            self.nodes[p as usize].next = n;
        }
        if n == NIL {
            self.tail = p;
        } else {
            self.nodes[n as usize].prev = p;
        }
    }

    fn push_front(&mut self, i: u32) {
        self.nodes[i as usize].prev = NIL;
        self.nodes[i as usize].next = self.head;
        if self.head != NIL {
            self.nodes[self.head as usize].prev = i;
        }
        self.head = i;
        if self.tail == NIL {
            self.tail = i;
        }
    }

    /// Make `h` the most recently used block, inserting it (and evicting the least recently
    /// used one when full) if absent. Returns whether it was newly inserted.
    pub fn touch(&mut self, h: u64) -> bool {
        if self.cap == 0 {
            return false;
        }
        if let Some(&i) = self.map.get(&h) {
            if self.head != i {
                self.unlink(i);
                self.push_front(i);
            }
            return false;
        }
        if self.map.len() >= self.cap {
            let lru = self.tail;
            self.unlink(lru);
            self.map.remove(&self.nodes[lru as usize].hash);
            self.free.push(lru);
        }
        let node = Node {
            hash: h,
            prev: NIL,
            next: NIL,
        };
        let i = match self.free.pop() {
            Some(i) => {
                self.nodes[i as usize] = node;
                i
            }
            None => {
                self.nodes.push(node);
                (self.nodes.len() - 1) as u32
            }
        };
        self.map.insert(h, i);
        self.push_front(i);
        true
    }
}

/// Where a prompt's tokens come from.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Hit {
    /// Tokens found on the GPU level (not computed).
    pub gpu: u32,
    /// Tokens found on the CPU level after the GPU run (loaded back, not computed).
    pub cpu: u32,
    /// Tokens to compute (prefill).
    pub computed: u32,
}

/// The two cache levels.
pub struct KvCache {
    /// Tokens per block.
    pub block: u32,
    gpu: BlockLru,
    cpu: Option<BlockLru>,
}

impl KvCache {
    /// A cache of `gpu_tokens` on the GPU level and, if given, `cpu_tokens` on the CPU level
    /// (capacities round down to whole blocks).
    pub fn new(block: u32, gpu_tokens: u64, cpu_tokens: Option<u64>) -> Self {
        let b = u64::from(block.max(1));
        KvCache {
            block: block.max(1),
            gpu: BlockLru::new((gpu_tokens / b) as usize),
            cpu: cpu_tokens.map(|t| BlockLru::new((t / b) as usize)),
        }
    }

    /// Look a prompt of `prompt_len` tokens with these block hashes up, touching what hits
    /// (GPU hits stay hot; CPU hits are about to be loaded onto the GPU level).
    pub fn lookup(&mut self, blocks: &[u64], prompt_len: u32) -> Hit {
        // The last prompt token is always computed: only blocks inside the first
        // `prompt_len − 1` tokens can hit.
        let usable = (prompt_len.saturating_sub(1) / self.block) as usize;
        let usable = usable.min(blocks.len());
        let g = blocks[..usable]
            .iter()
            .take_while(|h| self.gpu.contains(**h))
            .count();
        let c = match &self.cpu {
            Some(cpu) => blocks[g..usable]
                .iter()
                .take_while(|h| cpu.contains(**h))
                .count(),
            None => 0,
        };
        for &h in blocks[..g].iter().rev() {
            self.gpu.touch(h);
        }
        if let Some(cpu) = &mut self.cpu {
            for &h in blocks[g..g + c].iter().rev() {
                cpu.touch(h);
            }
        }
        let gpu = g as u32 * self.block;
        let cpu = c as u32 * self.block;
        Hit {
            gpu,
            cpu,
            computed: prompt_len - gpu - cpu,
        }
    }

    /// Store a prefilled prompt's blocks on the GPU level and write them through to the CPU
    /// level; returns how many blocks the CPU level newly received (offload traffic).
    pub fn store(&mut self, blocks: &[u64]) -> u64 {
        for &h in blocks.iter().rev() {
            self.gpu.touch(h);
        }
        let mut written = 0;
        if let Some(cpu) = &mut self.cpu {
            for &h in blocks.iter().rev() {
                written += u64::from(cpu.touch(h));
            }
        }
        written
    }

    /// Tokens held on the GPU level.
    pub fn gpu_tokens(&self) -> u64 {
        self.gpu.len() as u64 * u64::from(self.block)
    }

    /// Tokens held on the CPU level (0 without one).
    pub fn cpu_tokens(&self) -> u64 {
        self.cpu
            .as_ref()
            .map_or(0, |c| c.len() as u64 * u64::from(self.block))
    }
}

/// The cache with its accounting: what a request's admission and the end of its prefill do
/// to the cache and to the `/metrics` counters. Owned by the batching scheduler (or, in the
/// exact-schedule mode, locked per request).
pub struct KvModel {
    cache: KvCache,
    /// The GPU pool in tokens (0 = not modelled).
    pub gpu_tokens: u64,
    offload: Option<OffloadConfig>,
    metrics: Arc<Metrics>,
}

/// What admitting a request found.
#[derive(Debug, Clone, Copy)]
pub struct Admission {
    /// Where its prompt tokens come from.
    pub hit: Hit,
    /// Time to load its CPU hits onto the GPU.
    pub load: Duration,
}

impl KvModel {
    /// The model for a config, counting into `metrics`.
    pub fn new(cfg: &KvCacheConfig, metrics: Arc<Metrics>) -> Self {
        KvModel {
            cache: KvCache::new(
                cfg.block_tokens,
                cfg.gpu_tokens,
                cfg.offload.as_ref().map(|o| o.cpu_tokens),
            ),
            gpu_tokens: cfg.gpu_tokens,
            offload: cfg.offload.clone(),
            metrics,
        }
    }

    /// Whether prompts need block hashes (the cache can hold anything).
    pub fn caching(&self) -> bool {
        self.gpu_tokens >= u64::from(self.cache.block)
    }

    /// Tokens per block.
    pub fn block(&self) -> u32 {
        self.cache.block
    }

    /// Admit a prompt: look it up and count its tokens by source.
    pub fn admit(&mut self, blocks: &[u64], prompt_len: u32) -> Admission {
        let hit = self.cache.lookup(blocks, prompt_len);
        let m = &self.metrics;
        Metrics::add(&m.prompt_tokens, u64::from(prompt_len));
        Metrics::add(&m.gpu_hit_tokens, u64::from(hit.gpu));
        Metrics::add(&m.cpu_hit_tokens, u64::from(hit.cpu));
        Metrics::add(&m.computed_tokens, u64::from(hit.computed));
        let mut load = Duration::ZERO;
        if let (Some(o), true) = (&self.offload, hit.cpu > 0) {
            load = Duration::from_secs_f64(f64::from(hit.cpu) * o.load_ms_per_token / 1000.0);
            Metrics::add(
                &m.offload_bytes_cpu_to_gpu,
                u64::from(hit.cpu) * o.bytes_per_token,
            );
            Metrics::add(&m.offload_ns_cpu_to_gpu, load.as_nanos() as u64);
        }
        Admission { hit, load }
    }

    /// A prompt's prefill ended: its blocks are cached (and written through to the CPU tier).
    pub fn prefilled(&mut self, blocks: &[u64]) {
        let written = self.cache.store(blocks);
        if let Some(o) = &self.offload {
            let tokens = written * u64::from(self.cache.block);
            let m = &self.metrics;
            Metrics::add(&m.offload_bytes_gpu_to_cpu, tokens * o.bytes_per_token);
            Metrics::add(
                &m.offload_ns_gpu_to_cpu,
                (tokens as f64 * o.load_ms_per_token * 1e6) as u64,
            );
            m.cpu_used_tokens.store(
                self.cache.cpu_tokens(),
                std::sync::atomic::Ordering::Relaxed,
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lru_evicts_the_least_recently_touched() {
        let mut l = BlockLru::new(3);
        assert!(l.touch(1) && l.touch(2) && l.touch(3));
        assert!(!l.touch(1)); // 1 is now the most recent
        assert!(l.touch(4)); // evicts 2
        assert!(!l.contains(2));
        assert!(l.contains(1) && l.contains(3) && l.contains(4));
        assert_eq!(l.len(), 3);
        assert!(l.touch(5)); // evicts 3
        assert!(!l.contains(3));
        let mut z = BlockLru::new(0);
        assert!(!z.touch(1) && !z.contains(1));
    }

    #[test]
    fn block_hashes_name_prefixes() {
        let a: Vec<u32> = (0..200).collect();
        let mut b = a.clone();
        b[100] = 9999; // differs inside block 1 (64..128)
        let (ha, hb) = (block_hashes(&a, 64), block_hashes(&b, 64));
        assert_eq!(ha.len(), 3);
        assert_eq!(ha[0], hb[0]);
        assert_ne!(ha[1], hb[1]);
        assert_ne!(ha[2], hb[2], "a block's name covers the whole prefix");
    }

    #[test]
    fn lookup_prefers_gpu_then_cpu_and_recomputes_the_last_token() {
        let toks: Vec<u32> = (0..640).collect();
        let h = block_hashes(&toks, 64);
        let mut c = KvCache::new(64, 64 * 4, Some(64 * 100));
        assert_eq!(
            c.lookup(&h, 640),
            Hit {
                gpu: 0,
                cpu: 0,
                computed: 640
            }
        );
        c.store(&h);
        // GPU keeps the 4 head blocks (tail evicted first); CPU has all 10, but a full
        // hit is capped at prompt − 1 tokens: 9 blocks.
        assert_eq!(
            c.lookup(&h, 640),
            Hit {
                gpu: 256,
                cpu: 320,
                computed: 64
            }
        );
        let mut small = KvCache::new(64, 0, None);
        small.store(&h);
        assert_eq!(small.lookup(&h, 640).computed, 640);
    }
}
