//! The mixture stream: the recipe's schedule turned into packed training sequences.
//!
//! [`MixtureStream`] implements syne-data's [`SequenceSource`], the trainer's only view of its
//! data. For every sequence position the [`Schedule`](crate::sampler::Schedule) names the source
//! (exact per-stage quotas, smooth interleaving). Inside a source:
//!
//! - documents are arranged per epoch: in curriculum order when the source has the perplexity
//!   curriculum (quantile buckets easy-to-hard, shuffled within a bucket; [`crate::curriculum`]),
//!   else shuffled, both with a seed that changes every epoch; the arrangement is packed into
//!   `seq_len + 1`-token windows with stride `seq_len` (documents cross window borders; the
//!   segment ids let the trainer mask attention at them);
//! - a source with topics is split into one sub-stream per topic, each in the same arrangement,
//!   and the topic of each sequence is drawn by smooth weighted round-robin over the topic ratios.
//!   The ratios start where the recipe's mixer puts them and move by its rule ([`crate::mixer`]:
//!   the paper's, static, stratified, ODM, ADO) at each validation point past an interval of
//!   `topics.interval_tokens`, from the per-topic held-out losses the trainer reports
//!   (`SOURCE/TOPIC` keys). A topic that
//!   has given all its tokens (times `max_epochs`) is exhausted: its ratio drops to 0.
//! - a group mixed online (`[source_mixing]`, [`GroupMixing`]) keeps the schedule's slots of the
//!   group (so its share of every stage is exactly the plan's) but draws which of its sources
//!   fills each slot by smooth weighted round-robin over source ratios that a mixer moves from
//!   each source's held-out loss (the domain named after the source), by the same rules and
//!   with the same exhaustion as topics. Its events are logged as `group:NAME`.
//!
//! Documents marked held out are never trained on. Everything is deterministic given the seed:
//! the state saved with a checkpoint (topic ratios, credits, reads and consumption counters) and
//! the position reproduce exactly the sequences an uninterrupted run would have drawn.

use std::collections::BTreeMap;

use syne_data::shards::ShardReader;
use syne_data::stream::{PackedSequence, SequenceSource};
use syne_data::DataError;

use crate::curriculum::{self, Order};
use crate::error::{MixError, Result};
use crate::recipe::{CurriculumSettings, Recipe, TopicSettings};
use crate::sampler::{Cursor, Schedule};
use syne_recipe::records::mixture::group_label;
use syne_recipe::SourceMixing;

/// What the run knows of one document of a source (in shard order).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct DocNote {
    /// Index into [`SourceInput::topics`].
    pub topic: Option<u16>,
    /// The backbone's perplexity on it (the curriculum's key).
    pub perplexity: Option<f64>,
    /// Kept for validation, never trained on.
    pub heldout: bool,
}

/// One source as the stream reads it.
pub struct SourceInput {
    /// The source's name.
    pub name: String,
    /// The source's shards, in order.
    pub shards: Vec<ShardReader>,
    /// Topic names (empty: the source is not split by topic).
    pub topics: Vec<String>,
    /// One note per document of the shards (empty: every document trains, no topic, no score).
    pub notes: Vec<DocNote>,
    /// Order the source by perplexity (needs a perplexity per training document).
    pub curriculum: bool,
    /// How often the source's documents may be read.
    pub max_epochs: f64,
}

/// Settings of a stream.
#[derive(Debug, Clone)]
pub struct StreamSettings {
    /// Tokens per sequence.
    pub seq_len: usize,
    /// Seed of every arrangement.
    pub seed: u64,
    /// The perplexity curriculum, when the recipe has one.
    pub curriculum: Option<CurriculumSettings>,
    /// Topic re-weighting, when the recipe has it.
    pub topics: Option<TopicSettings>,
    /// Online mixing of the sources within groups, when the recipe has it.
    pub source_mixing: Option<GroupMixing>,
}

/// `[source_mixing]` with the sources of its groups resolved.
#[derive(Debug, Clone)]
pub struct GroupMixing {
    /// The recipe's `[source_mixing]`.
    pub settings: SourceMixing,
    /// Mixed group → its sources with their share of the group (`[mixture.GROUP]`).
    pub groups: BTreeMap<String, Vec<(String, f64)>>,
}

impl GroupMixing {
    /// The recipe's `[source_mixing]`, when it has one.
    pub fn from_recipe(recipe: &Recipe) -> Option<GroupMixing> {
        let settings = recipe.source_mixing.clone()?;
        let groups = settings
            .groups
            .iter()
            .map(|g| (g.clone(), recipe.mixture.get(g).map(|m| m.iter().map(|(s, r)| (s.clone(), *r)).collect()).unwrap_or_default()))
            .collect();
        Some(GroupMixing { settings, groups })
    }
}

/// One arrangement of a sub-stream's documents, packed.
struct Epoch {
    number: u64,
    /// Document indices into the source's table, in reading order.
    order: Vec<u32>,
    /// Token offset of each document of `order` (one more entry: the total).
    starts: Vec<u64>,
}

/// The documents of one (source, topic).
struct SubStream {
    docs: Vec<u32>,
    /// Perplexities of `docs` (curriculum sources).
    perplexity: Vec<f64>,
    tokens: u64,
    /// Sequences per epoch.
    sequences: u64,
    /// Reads allowed in the run: sequences x max_epochs.
    allowed: u64,
    epoch: Option<Epoch>,
}

struct SourceData {
    name: String,
    shards: Vec<ShardReader>,
    /// (shard, document) of each document.
    table: Vec<(u32, u32)>,
    topics: Vec<String>,
    subs: Vec<SubStream>,
    curriculum: bool,
    /// Curriculum bucket of each document of the table (0 without a curriculum).
    doc_bucket: Vec<u16>,
    /// The run's planned tokens / the source's training tokens.
    planned_fraction: f64,
}

pub use syne_recipe::records::mixture::{Account, BucketRange, Consumed, MixtureEvent, MixtureState, SourceAccount, StageAccount, TopicState};

/// The sampler that feeds the trainer a recipe's mixture.
pub struct MixtureStream {
    settings: StreamSettings,
    cursor: Cursor,
    /// In the schedule's source order.
    sources: Vec<SourceData>,
    state: MixtureState,
    accounts: BTreeMap<String, SourceAccount>,
    /// Per mixed group in `state.groups` order: its name and the schedule indices of its sources
    /// (in the order of its state's `topics`).
    group_members: Vec<(String, Vec<usize>)>,
    /// Per schedule source: its mixed group (an index into `group_members`).
    group_of: Vec<Option<usize>>,
}

fn data_err(detail: String) -> DataError {
    DataError::Sequence { source_name: "the mixture stream".into(), detail }
}

impl MixtureStream {
    /// A stream over `sources` (every source of the schedule must be among them) at position 0.
    pub fn new(schedule: Schedule, inputs: Vec<SourceInput>, settings: StreamSettings) -> Result<MixtureStream> {
        let seq_len = settings.seq_len as u64;
        if seq_len == 0 || seq_len != schedule.seq_len {
            return Err(MixError::Plan(format!("stream sequence length {seq_len} differs from the schedule's {}", schedule.seq_len)));
        }
        let mut by_name: BTreeMap<String, SourceInput> = inputs.into_iter().map(|s| (s.name.clone(), s)).collect();
        let mut sources = Vec::new();
        let mut accounts = BTreeMap::new();
        let mut topic_states = BTreeMap::new();
        let mixed: BTreeMap<&str, &str> =
            settings.source_mixing.iter().flat_map(|m| m.groups.iter().flat_map(|(g, srcs)| srcs.iter().map(move |(s, _)| (s.as_str(), g.as_str())))).collect();
        let mut quotas = Vec::new();
        for name in &schedule.sources {
            let input = by_name.remove(name).ok_or_else(|| MixError::Plan(format!("source `{name}` of the plan has no prepared shards")))?;
            // The quota of the whole run must fit what the source may give.
            let quota: u64 =
                schedule.stages.iter().flat_map(|st| st.sources.iter().zip(&st.quotas).filter(|(s, _)| schedule.sources[**s] == *name).map(|(_, q)| *q)).sum();
            let (data, account, topic_state) = SourceData::build(input, &settings, quota)?;
            let allowed = data.allowed();
            quotas.push(quota);
            // A mixed group's sources answer for the group's quota together (below).
            if quota > allowed && !mixed.contains_key(name.as_str()) {
                return Err(MixError::Plan(format!(
                    "source `{name}`: the plan takes {quota} sequences of {seq_len} tokens but its {} training tokens allow {allowed} (max_epochs {}); lower its share or allow more epochs",
                    account.train_tokens,
                    data.subs.first().map_or(0.0, |s| if s.sequences == 0 { 0.0 } else { s.allowed as f64 / s.sequences as f64 })
                )));
            }
            if let Some(t) = topic_state {
                topic_states.insert(name.clone(), t);
            }
            accounts.insert(name.clone(), account);
            sources.push(data);
        }
        let (group_members, group_states) = Self::mixed_groups(&schedule, &sources, &quotas, &settings)?;
        let mut group_of = vec![None; sources.len()];
        for (g, (_, members)) in group_members.iter().enumerate() {
            members.iter().for_each(|&s| group_of[s] = Some(g));
        }
        let consumed = vec![BTreeMap::new(); schedule.stages.len()];
        let state = MixtureState { position: 0, topics: topic_states, groups: group_states, consumed };
        Ok(MixtureStream { cursor: schedule.cursor(0), settings, sources, state, accounts, group_members, group_of })
    }

    /// The groups mixed online that the schedule draws from: their members (schedule indices)
    /// and starting states. A group's sources together must allow the group's whole quota.
    #[allow(clippy::type_complexity)]
    fn mixed_groups(
        schedule: &Schedule,
        sources: &[SourceData],
        quotas: &[u64],
        settings: &StreamSettings,
    ) -> Result<(Vec<(String, Vec<usize>)>, BTreeMap<String, TopicState>)> {
        let (mut members_of, mut states) = (Vec::new(), BTreeMap::new());
        let Some(mixing) = &settings.source_mixing else { return Ok((members_of, states)) };
        let mixer = crate::mixer::source_mixer_for(&mixing.settings);
        for (group, shares) in &mixing.groups {
            let (members, shares): (Vec<usize>, Vec<f64>) =
                shares.iter().filter_map(|(name, share)| schedule.sources.iter().position(|s| s == name).map(|i| (i, *share))).unzip();
            if members.is_empty() {
                continue;
            }
            let allowed: Vec<u64> = members.iter().map(|&i| sources[i].allowed()).collect();
            let quota: u64 = members.iter().map(|&i| quotas[i]).sum();
            if quota > allowed.iter().sum::<u64>() {
                return Err(MixError::Plan(format!(
                    "group `{group}`: the plan takes {quota} sequences of {} tokens but its sources allow {} together; lower its share or allow more epochs",
                    schedule.seq_len,
                    allowed.iter().sum::<u64>()
                )));
            }
            let total: f64 = shares.iter().sum();
            let shares: Vec<f64> = shares.iter().map(|s| if total > 0.0 { s / total } else { 0.0 }).collect();
            let with_data: Vec<bool> = allowed.iter().map(|&a| a > 0).collect();
            let ratios = mixer.initial_ratios(&shares, &with_data);
            states.insert(
                group.clone(),
                TopicState {
                    topics: members.iter().map(|&i| sources[i].name.clone()).collect(),
                    credits: vec![0.0; ratios.len()],
                    reads: vec![0; ratios.len()],
                    exhausted: allowed.iter().map(|&a| a == 0).collect(),
                    last_losses: None,
                    last_adjusted_tokens: 0,
                    mixer: mixer.initial_state(&ratios),
                    initial_ratios: ratios.clone(),
                    ratios,
                },
            );
            members_of.push((group.clone(), members));
        }
        Ok((members_of, states))
    }

    /// Planned against consumed, per stage, source, topic and bucket.
    pub fn account(&self) -> Account {
        let sch = self.cursor.schedule();
        Account {
            seq_len: sch.seq_len,
            position: self.state.position,
            planned_sequences: sch.sequences(),
            stages: sch
                .stages
                .iter()
                .zip(&self.state.consumed)
                .map(|(st, consumed)| StageAccount {
                    name: st.name.clone(),
                    planned_tokens: st.sources.iter().zip(&st.quotas).map(|(&s, &q)| (sch.sources[s].clone(), q * sch.seq_len)).collect(),
                    consumed: consumed.clone(),
                })
                .collect(),
            topics: self.state.topics.clone(),
            groups: self.state.groups.clone(),
            sources: self.accounts.clone(),
        }
    }

    fn topic_draw(&mut self, source: usize) -> Result<usize> {
        let src = &self.sources[source];
        let Some(ts) = self.state.topics.get_mut(&src.name) else { return Ok(0) };
        let allowed: Vec<u64> = src.subs.iter().map(|s| s.allowed).collect();
        draw_weighted(ts, &allowed).ok_or_else(|| MixError::Plan(format!("source `{}`: every topic is exhausted", src.name)))
    }

    /// Which source of mixed group `g` fills the group's slot; returns its schedule index and
    /// how many sequences the group has read from it before.
    fn group_draw(&mut self, g: usize) -> Result<(usize, u64)> {
        let (name, members) = &self.group_members[g];
        let ts = self.state.groups.get_mut(name).expect("a state per mixed group");
        let allowed: Vec<u64> = members.iter().map(|&s| self.sources[s].allowed()).collect();
        let k = draw_weighted(ts, &allowed).ok_or_else(|| MixError::Plan(format!("group `{name}`: every source is exhausted")))?;
        Ok((members[k], ts.reads[k] - 1))
    }
}

/// Smooth weighted round-robin over `ts.ratios`: one draw, counted in `ts.reads`. An item that
/// has given its `allowed` reads is exhausted first (ratio 0, the others share its weight).
/// `None`: every item is exhausted.
fn draw_weighted(ts: &mut TopicState, allowed: &[u64]) -> Option<usize> {
    for (i, &a) in allowed.iter().enumerate() {
        if !ts.exhausted[i] && ts.reads[i] >= a {
            ts.exhausted[i] = true;
            ts.ratios[i] = 0.0;
            let total: f64 = ts.ratios.iter().sum();
            if total > 0.0 {
                ts.ratios.iter_mut().for_each(|r| *r /= total);
            }
        }
    }
    let live: Vec<usize> = (0..ts.ratios.len()).filter(|&i| !ts.exhausted[i] && ts.ratios[i] > 0.0).collect();
    let mut best = *live.first()?;
    for &i in &live {
        ts.credits[i] += ts.ratios[i];
        if ts.credits[i] > ts.credits[best] {
            best = i;
        }
    }
    ts.credits[best] -= live.iter().map(|&i| ts.ratios[i]).sum::<f64>();
    ts.reads[best] += 1;
    Some(best)
}

/// One mixture (a topic source's or a mixed group's) at a validation point: the first point
/// sets the baseline, a point past the next interval lets `mixer` move the ratios.
#[allow(clippy::too_many_arguments)]
fn observe_mixture(
    label: &str,
    ts: &mut TopicState,
    losses: Vec<Option<f64>>,
    tokens: u64,
    sequences: u64,
    interval_tokens: u64,
    mixer: &dyn crate::mixer::Mixer,
    events: &mut Vec<MixtureEvent>,
) -> Result<()> {
    if losses.iter().all(Option::is_none) {
        return Ok(());
    }
    let Some(previous) = ts.last_losses.clone() else {
        // The first validation sets the baseline; items without held-out text have none and are
        // never moved by their own loss.
        ts.last_losses = Some(losses);
        ts.last_adjusted_tokens = tokens;
        events.push(MixtureEvent::Baseline { source: label.to_string(), baseline: ts.last_losses.clone() });
        return Ok(());
    };
    if tokens / interval_tokens <= ts.last_adjusted_tokens / interval_tokens {
        return Ok(());
    }
    let obs = crate::mixer::Observation { source: label, tokens, sequences, losses: &losses };
    let event = mixer.update(ts, &obs)?;
    ts.last_losses = Some(losses.iter().zip(&previous).map(|(c, p)| c.or(*p)).collect());
    ts.last_adjusted_tokens = tokens;
    events.extend(event);
    Ok(())
}

impl SourceData {
    /// Sequences the run may read from the source (every topic, every epoch allowed).
    fn allowed(&self) -> u64 {
        self.subs.iter().map(|s| s.allowed).sum()
    }

    fn build(input: SourceInput, settings: &StreamSettings, quota: u64) -> Result<(SourceData, SourceAccount, Option<TopicState>)> {
        let name = input.name.clone();
        let mut table = Vec::new();
        let mut lengths = Vec::new();
        for (s, sh) in input.shards.iter().enumerate() {
            let off = sh.offsets();
            for d in 0..sh.num_docs() {
                table.push((s as u32, d as u32));
                lengths.push(off[d + 1] - off[d]);
            }
        }
        if !input.notes.is_empty() && input.notes.len() != table.len() {
            return Err(MixError::Plan(format!("source `{name}`: {} document notes for {} documents", input.notes.len(), table.len())));
        }
        let note = |i: usize| input.notes.get(i).copied().unwrap_or_default();
        let n_topics = input.topics.len().max(1);
        if let Some(i) = (0..table.len()).find(|&i| note(i).topic.is_some_and(|t| t as usize >= n_topics)) {
            return Err(MixError::Plan(format!("source `{name}`: document {i} has topic {} of {n_topics}", note(i).topic.unwrap_or(0))));
        }
        let curriculum = input.curriculum && settings.curriculum.is_some();
        // `shuffled` and `none` order documents without their perplexity: no scores, no buckets.
        let scored = curriculum && settings.curriculum.as_ref().is_some_and(|c| c.order.needs_scores());
        let train: Vec<usize> = (0..table.len()).filter(|&i| !note(i).heldout).collect();
        if scored {
            if let Some(&i) = train.iter().find(|&&i| note(i).perplexity.is_none()) {
                return Err(MixError::Plan(format!("source `{name}`: document {i} has no perplexity score for the curriculum")));
            }
        }
        // Buckets: quantiles of perplexity over the source's training documents.
        let mut doc_bucket = vec![0u16; table.len()];
        let mut bucket_ranges = Vec::new();
        if scored {
            let c = settings.curriculum.as_ref().expect("curriculum settings");
            let ppl: Vec<f64> = train.iter().map(|&i| note(i).perplexity.unwrap_or(f64::INFINITY)).collect();
            let placed = curriculum::order(&ppl, c.buckets, Order::Ascending, 0)?;
            bucket_ranges =
                (0..c.buckets).map(|b| BucketRange { bucket: b, docs: 0, min_perplexity: f64::INFINITY, max_perplexity: f64::NEG_INFINITY }).collect();
            for p in placed {
                doc_bucket[train[p.doc]] = p.bucket as u16;
                let r = &mut bucket_ranges[p.bucket];
                r.docs += 1;
                r.min_perplexity = r.min_perplexity.min(ppl[p.doc]);
                r.max_perplexity = r.max_perplexity.max(ppl[p.doc]);
            }
        }
        let seq_len = settings.seq_len as u64;
        let mut subs = Vec::new();
        let mut topic_tokens = BTreeMap::new();
        for t in 0..n_topics {
            let docs: Vec<u32> = train.iter().filter(|&&i| note(i).topic.map_or(0, usize::from) == t || input.topics.is_empty()).map(|&i| i as u32).collect();
            let tokens: u64 = docs.iter().map(|&d| lengths[d as usize]).sum();
            let sequences = if tokens > seq_len { (tokens - 1) / seq_len } else { 0 };
            if let Some(tn) = input.topics.get(t) {
                topic_tokens.insert(tn.clone(), tokens);
            }
            subs.push(SubStream {
                perplexity: docs.iter().map(|&d| note(d as usize).perplexity.unwrap_or(0.0)).collect(),
                docs,
                tokens,
                sequences,
                allowed: (sequences as f64 * input.max_epochs).floor() as u64,
                epoch: None,
            });
        }
        let train_tokens: u64 = subs.iter().map(|s| s.tokens).sum();
        let planned_fraction = (quota * seq_len) as f64 / train_tokens.max(1) as f64;
        let mixer = settings.topics.as_ref().map(crate::mixer::mixer_for);
        let topic_state = (!input.topics.is_empty()).then(|| {
            let shares: Vec<f64> = subs.iter().map(|s| s.tokens as f64 / train_tokens.max(1) as f64).collect();
            let with_data: Vec<bool> = subs.iter().map(|s| s.allowed > 0).collect();
            let ratios = mixer.as_ref().map_or_else(|| shares.clone(), |m| m.initial_ratios(&shares, &with_data));
            TopicState {
                topics: input.topics.clone(),
                credits: vec![0.0; ratios.len()],
                reads: vec![0; ratios.len()],
                exhausted: subs.iter().map(|s| s.allowed == 0).collect(),
                last_losses: None,
                last_adjusted_tokens: 0,
                mixer: mixer.as_ref().and_then(|m| m.initial_state(&ratios)),
                initial_ratios: ratios.clone(),
                ratios,
            }
        });
        let account = SourceAccount {
            train_docs: train.len() as u64,
            heldout_docs: (table.len() - train.len()) as u64,
            train_tokens,
            buckets: bucket_ranges,
            topic_tokens,
        };
        Ok((SourceData { name, shards: input.shards, table, topics: input.topics, subs, curriculum, doc_bucket, planned_fraction }, account, topic_state))
    }

    /// Arrange sub-stream `t` for `epoch` (curriculum order or a shuffle; the seed moves with the
    /// epoch so a repeated source is read in a new order).
    fn arrange(&mut self, t: usize, epoch: u64, settings: &StreamSettings) -> Result<()> {
        let sub = &mut self.subs[t];
        if sub.epoch.as_ref().is_some_and(|e| e.number == epoch) {
            return Ok(());
        }
        let base = settings.seed ^ xxhash_rust::xxh3::xxh3_64(self.name.as_bytes()) ^ (t as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        let seed = base ^ epoch.wrapping_mul(0xA076_1D64_78BD_642F);
        let placed = match (&settings.curriculum, self.curriculum) {
            (Some(c), true) => {
                let order: Order = c.order;
                let placed = curriculum::order(&sub.perplexity, c.buckets, order, seed ^ c.seed)?;
                if epoch == 0 && self.planned_fraction < 1.0 && order.needs_scores() {
                    // The run reads only part of the source: take that share of every bucket
                    // (the first documents of its shuffle) and order those easy to hard, so the
                    // curriculum spans all difficulties instead of stopping in the easiest
                    // bucket; the remaining documents follow in the same order.
                    let len = |p: &curriculum::Placement| {
                        let (s, k) = self.table[sub.docs[p.doc] as usize];
                        let off = self.shards[s as usize].offsets();
                        off[k as usize + 1] - off[k as usize]
                    };
                    let mut bucket_tokens = vec![0u64; c.buckets];
                    placed.iter().for_each(|p| bucket_tokens[p.bucket] += len(p));
                    let mut taken = vec![0u64; c.buckets];
                    let (mut first, mut rest) = (Vec::new(), Vec::new());
                    for p in placed {
                        if (taken[p.bucket] as f64) < self.planned_fraction * bucket_tokens[p.bucket] as f64 {
                            taken[p.bucket] += len(&p);
                            first.push(p);
                        } else {
                            rest.push(p);
                        }
                    }
                    first.extend(rest);
                    first
                } else {
                    placed
                }
            }
            _ => curriculum::order(&vec![0.0; sub.docs.len()], 1, Order::Ascending, seed)?,
        };
        let order: Vec<u32> = placed.iter().map(|p| sub.docs[p.doc]).collect();
        let mut starts = Vec::with_capacity(order.len() + 1);
        let mut total = 0u64;
        for &d in &order {
            starts.push(total);
            let (s, k) = self.table[d as usize];
            let off = self.shards[s as usize].offsets();
            total += off[k as usize + 1] - off[k as usize];
        }
        starts.push(total);
        sub.epoch = Some(Epoch { number: epoch, order, starts });
        Ok(())
    }

    /// Sequence `index` of sub-stream `t` (epochs continue the count), with the curriculum
    /// bucket of each of its first `seq_len` tokens counted into `buckets`.
    fn read(&mut self, t: usize, index: u64, settings: &StreamSettings, segments: bool, buckets: &mut BTreeMap<String, u64>) -> Result<PackedSequence> {
        let seq_len = settings.seq_len as u64;
        let n = self.subs[t].sequences;
        if n == 0 || index >= self.subs[t].allowed {
            return Err(MixError::Plan(format!(
                "source `{}`{}: sequence {index} is beyond the {} its data allows",
                self.name,
                self.topics.get(t).map(|x| format!(" topic `{x}`")).unwrap_or_default(),
                self.subs[t].allowed
            )));
        }
        let (epoch, k) = (index / n, index % n);
        self.arrange(t, epoch, settings)?;
        let ep = self.subs[t].epoch.as_ref().expect("arranged");
        let (start, len) = (k * seq_len, seq_len + 1);
        let mut out = PackedSequence { tokens: Vec::with_capacity(len as usize), segments: Vec::new() };
        let mut i = ep.starts.partition_point(|&s| s <= start) - 1;
        let mut pos = start;
        while (out.tokens.len() as u64) < len {
            let (s, d) = self.table[ep.order[i] as usize];
            let shard = &self.shards[s as usize];
            let off = shard.offsets();
            let local = pos - ep.starts[i];
            let doc_len = off[d as usize + 1] - off[d as usize];
            let take = (doc_len - local).min(len - out.tokens.len() as u64);
            let toks = shard.token_range(off[d as usize] + local, off[d as usize] + local + take);
            out.tokens.extend((0..take as usize).map(|j| i64::from(toks.get(j))));
            if segments {
                out.segments.extend(std::iter::repeat_n((epoch << 32 | i as u64) as i64, take as usize));
            }
            if self.curriculum {
                // Only the first seq_len tokens are trained inputs.
                let trained = (pos + take).min(start + seq_len).saturating_sub(pos);
                if trained > 0 {
                    *buckets.entry(self.doc_bucket[ep.order[i] as usize].to_string()).or_default() += trained;
                }
            }
            pos += take;
            i += 1;
        }
        Ok(out)
    }
}

impl SequenceSource for MixtureStream {
    fn sequence(&mut self, position: u64, with_segments: bool) -> syne_data::Result<PackedSequence> {
        if position != self.state.position {
            return Err(data_err(format!(
                "the mixture is at sequence {} but sequence {position} was asked for; restore from a checkpoint first",
                self.state.position
            )));
        }
        let draw = self.cursor.next().ok_or_else(|| data_err(format!("the plan's {} sequences are all drawn", self.cursor.schedule().sequences())))?;
        let seq_len = self.settings.seq_len as u64;
        // A mixed group's slot goes to the source its mixer draws.
        let (source, group_read) = match self.group_of[draw.source] {
            Some(g) => self.group_draw(g).map(|(s, read)| (s, Some(read))).map_err(|e| data_err(e.to_string()))?,
            None => (draw.source, None),
        };
        let src_name = self.cursor.schedule().sources[source].clone();
        let has_topics = self.state.topics.contains_key(&src_name);
        let (t, index) = if has_topics {
            let t = self.topic_draw(source).map_err(|e| data_err(e.to_string()))?;
            (t, self.state.topics[&src_name].reads[t] - 1)
        } else {
            (0, group_read.unwrap_or(draw.index))
        };
        let mut buckets = BTreeMap::new();
        let seq = self.sources[source].read(t, index, &self.settings, with_segments, &mut buckets).map_err(|e| data_err(e.to_string()))?;
        let c = self.state.consumed[draw.stage].entry(src_name).or_default();
        c.tokens += seq_len;
        c.sequences += 1;
        if has_topics {
            *c.topics.entry(self.sources[source].topics[t].clone()).or_default() += seq_len;
        }
        for (b, n) in buckets {
            *c.buckets.entry(b).or_default() += n;
        }
        self.state.position += 1;
        Ok(seq)
    }

    fn planned_sequences(&self) -> Option<u64> {
        Some(self.cursor.schedule().sequences())
    }

    fn observe_validation(&mut self, tokens: u64, losses: &BTreeMap<String, f64>) -> syne_data::Result<Vec<MixtureEvent>> {
        let sequences = tokens / self.settings.seq_len as u64;
        let mut events = Vec::new();
        if let Some(settings) = &self.settings.topics {
            let mixer = crate::mixer::mixer_for(settings);
            for (source, ts) in &mut self.state.topics {
                let topic_losses = ts.topics.iter().map(|t| losses.get(&format!("{source}/{t}")).copied()).collect();
                observe_mixture(source, ts, topic_losses, tokens, sequences, settings.interval_tokens, mixer.as_ref(), &mut events)
                    .map_err(|e| data_err(e.to_string()))?;
            }
        }
        if let Some(mixing) = &self.settings.source_mixing {
            let mixer = crate::mixer::source_mixer_for(&mixing.settings);
            for (group, ts) in &mut self.state.groups {
                let source_losses = ts.topics.iter().map(|s| losses.get(s).copied()).collect();
                let label = group_label(group);
                observe_mixture(&label, ts, source_losses, tokens, sequences, mixing.settings.interval_tokens, mixer.as_ref(), &mut events)
                    .map_err(|e| data_err(e.to_string()))?;
            }
        }
        Ok(events)
    }

    fn state(&self) -> Option<MixtureState> {
        Some(self.state.clone())
    }

    fn restore(&mut self, position: u64, state: Option<&MixtureState>) -> syne_data::Result<()> {
        let saved = state.cloned().ok_or_else(|| data_err("the checkpoint has no mixture state".into()))?;
        if saved.position != position {
            return Err(data_err(format!("the checkpoint's mixture state is at sequence {} but the trainer at {position}", saved.position)));
        }
        if saved.consumed.len() != self.state.consumed.len() || saved.topics.keys().ne(self.state.topics.keys()) {
            return Err(data_err("the checkpoint's mixture state belongs to another plan (stages or topic sources differ)".into()));
        }
        if saved.groups.len() != self.state.groups.len() || saved.groups.iter().zip(&self.state.groups).any(|(a, b)| a.0 != b.0 || a.1.topics != b.1.topics) {
            return Err(data_err("the checkpoint's mixture state belongs to another plan (the groups mixed over their sources differ)".into()));
        }
        for (name, ts) in &saved.topics {
            if ts.topics != self.state.topics[name].topics {
                return Err(data_err(format!("source `{name}`: the checkpoint's topics differ from the run's")));
            }
        }
        self.cursor = self.cursor.schedule().cursor(position);
        self.state = saved;
        Ok(())
    }
}

#[cfg(test)]
#[path = "stream_tests.rs"]
mod tests;
