use super::*;
use crate::plan::Plan;
use crate::recipe::Recipe;
use syne_data::shards::{ShardWriter, TokenWidth};

const SEQ: usize = 16;

/// Source `web` (3 topics, curriculum) and `book` (plain); two stages.
fn recipe(max_epochs: f64) -> Recipe {
    let text = format!(
        r#"
[run]
name = "t"
output = "out"
[sources.web]
language = "en"
topics = true
curriculum = true
max_epochs = {max_epochs}
[sources.book]
language = "en"
max_epochs = {max_epochs}
[[stages]]
name = "one"
tokens = 3200
groups = {{ en = 1.0 }}
[[stages]]
name = "two"
tokens = 1600
groups = {{ en = 1.0 }}
mixture = {{ en = {{ web = 0.5, book = 0.5 }} }}
[mixture.en]
web = 0.75
book = 0.25
[topics]
interval_tokens = 320
[curriculum]
order = "ascending"
buckets = 4
"#
    );
    Recipe::from_str_at(&text, std::path::Path::new("t.toml")).unwrap()
}

/// Documents of `n` tokens each: token ids encode the source (`base`) and the document number,
/// so every sequence can be traced back to the documents it came from.
fn shard(dir: &std::path::Path, name: &str, base: u32, docs: usize, len: usize) -> ShardReader {
    let mut w = ShardWriter::create(&dir.join(name), TokenWidth::U32).unwrap();
    for d in 0..docs {
        w.push(&vec![base + d as u32; len]).unwrap();
    }
    w.finish().unwrap();
    ShardReader::open(&dir.join(name)).unwrap()
}

const WEB: u32 = 100_000;
const BOOK: u32 = 200_000;

fn stream(dir: &std::path::Path, max_epochs: f64) -> Result<MixtureStream> {
    // 120 web documents of 40 tokens: topic d % 3, perplexity = d (so bucket order is document
    // order), every 10th held out.
    let notes = (0..120).map(|d| DocNote { topic: Some((d % 3) as u16), perplexity: Some(d as f64), heldout: d % 10 == 9 }).collect();
    stream_of(dir, &recipe(max_epochs), notes, max_epochs)
}

/// The stream of recipe `r` over 120 web documents of 40 tokens (three topics, `notes`) and 60
/// book documents of 50 tokens.
fn stream_of(dir: &std::path::Path, r: &Recipe, notes: Vec<DocNote>, max_epochs: f64) -> Result<MixtureStream> {
    let schedule = Schedule::from_plan(&Plan::new(r), SEQ as u64, 1).unwrap();
    let web = SourceInput {
        name: "web".into(),
        shards: vec![shard(dir, "web", WEB, 120, 40)],
        topics: vec!["a".into(), "b".into(), "c".into()],
        notes,
        curriculum: true,
        max_epochs,
    };
    let book =
        SourceInput { name: "book".into(), shards: vec![shard(dir, "book", BOOK, 60, 50)], topics: vec![], notes: vec![], curriculum: false, max_epochs };
    MixtureStream::new(
        schedule,
        vec![web, book],
        StreamSettings { seq_len: SEQ, seed: 3, curriculum: r.curriculum.clone(), topics: r.topics.clone(), source_mixing: GroupMixing::from_recipe(r) },
    )
}

fn draw_all(s: &mut MixtureStream, from: u64, to: u64) -> Vec<PackedSequence> {
    (from..to).map(|p| s.sequence(p, true).unwrap()).collect()
}

#[test]
fn consumed_equals_planned_and_sequences_trace_to_their_sources() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = stream(dir.path(), 1.0).unwrap();
    let n = s.planned_sequences().unwrap();
    assert_eq!(n, 3200 / 16 + 1600 / 16);
    let seqs = draw_all(&mut s, 0, n);
    assert!(seqs.iter().all(|q| q.tokens.len() == SEQ + 1 && q.segments.len() == SEQ + 1));
    // The stage-one quotas: 150 web, 50 book sequences; each sequence from one source only.
    let from_web = |q: &PackedSequence| q.tokens.iter().all(|&t| (WEB as i64..WEB as i64 + 120).contains(&t));
    let from_book = |q: &PackedSequence| q.tokens.iter().all(|&t| (BOOK as i64..BOOK as i64 + 60).contains(&t));
    assert!(seqs.iter().all(|q| from_web(q) || from_book(q)));
    assert_eq!(seqs[..200].iter().filter(|q| from_web(q)).count(), 150);
    assert_eq!(seqs[200..].iter().filter(|q| from_web(q)).count(), 50);
    // Held-out documents are never trained on.
    assert!(seqs.iter().flat_map(|q| &q.tokens).all(|&t| !(WEB as i64..WEB as i64 + 120).contains(&t) || (t - WEB as i64) % 10 != 9));
    // Segments change exactly where the document changes.
    for q in &seqs {
        for i in 1..q.tokens.len() {
            assert_eq!(q.tokens[i] != q.tokens[i - 1], q.segments[i] != q.segments[i - 1]);
        }
    }
    let acc = s.account();
    for st in &acc.stages {
        for (src, &planned) in &st.planned_tokens {
            assert_eq!(st.consumed[src].tokens, planned, "stage {} source {src}", st.name);
        }
        let web = &st.consumed["web"];
        assert_eq!(web.topics.values().sum::<u64>(), web.tokens);
        assert_eq!(web.buckets.values().sum::<u64>(), web.tokens);
    }
    // The curriculum: web documents are read easy to hard (perplexity = document number), so
    // the first web sequences come from the lowest-perplexity quarter.
    let web_docs: Vec<i64> = seqs.iter().filter(|q| from_web(q)).map(|q| q.tokens[0] - WEB as i64).collect();
    assert!(web_docs[..20].iter().all(|&d| d < 30), "{:?}", &web_docs[..20]);
    assert_eq!(acc.stages[0].consumed["web"].buckets.keys().next().map(String::as_str), Some("0"));
    // The run reads ~74% of web: that share of every bucket, so the curriculum reaches the
    // hardest bucket (stage two reads the hard end).
    assert_eq!(acc.stages[1].consumed["web"].buckets.keys().last().map(String::as_str), Some("3"), "{:?}", acc.stages[1].consumed["web"].buckets);
    let web_tokens_by_bucket: Vec<u64> =
        (0..4).map(|b| acc.stages.iter().map(|st| st.consumed["web"].buckets.get(&b.to_string()).copied().unwrap_or(0)).sum()).collect();
    assert!(web_tokens_by_bucket.iter().all(|&t| t > 3200 / 4 / 2), "{web_tokens_by_bucket:?}");
    assert_eq!(acc.sources["web"].heldout_docs, 12);
    assert_eq!(acc.sources["web"].buckets.len(), 4);
    // Drawing past the plan is an error, as is asking out of order.
    assert!(s.sequence(n, false).is_err());
    let mut fresh = stream(dir.path(), 1.0).unwrap();
    assert!(fresh.sequence(5, false).is_err());
}

/// The stream of [`recipe`] with `[topics] mixer = MIXER`.
fn stream_with_mixer(dir: &std::path::Path, mixer: &str) -> MixtureStream {
    let text = toml::to_string(&recipe(2.0)).unwrap().replace("[topics]\n", &format!("[topics]\nmixer = \"{mixer}\"\n"));
    let r = Recipe::from_str_at(&text, std::path::Path::new("t.toml")).unwrap();
    let notes = (0..120).map(|d| DocNote { topic: Some((d % 3) as u16), perplexity: Some(d as f64), heldout: d % 10 == 9 }).collect();
    stream_of(dir, &r, notes, 2.0).unwrap()
}

/// Every sequence of a run of `mixer` validated where `losses` says (by tokens trained), and
/// its account; with `stop_at`, the run is killed before that sequence and a fresh stream
/// restored from its (JSON round-tripped) state draws the rest.
fn run_validated(
    dir: &std::path::Path,
    mixer: &str,
    stop_at: Option<u64>,
    losses: &dyn Fn(u64) -> Option<BTreeMap<String, f64>>,
) -> (Vec<PackedSequence>, Account, usize) {
    let mut s = stream_with_mixer(dir, mixer);
    let n = s.planned_sequences().unwrap();
    let (mut out, mut moves) = (Vec::new(), 0);
    let mut p = 0;
    while p < n {
        if let Some(l) = losses(p * SEQ as u64) {
            let ev = s.observe_validation(p * SEQ as u64, &l).unwrap();
            assert!(!ev.is_empty(), "an event at {}", p * SEQ as u64);
            moves += ev.iter().filter(|e| e.ratios_after().is_some()).count();
        }
        if Some(p) == stop_at {
            // Killed after the validation's checkpoint: a new process restores a fresh stream
            // from that state and continues.
            let state: Option<MixtureState> = serde_json::from_str(&serde_json::to_string(&s.state()).unwrap()).unwrap();
            s = stream_with_mixer(dir, mixer);
            s.restore(p, state.as_ref()).unwrap();
        }
        out.push(s.sequence(p, false).unwrap());
        p += 1;
    }
    (out, s.account(), moves)
}

fn web_losses(a: f64, b: f64, c: f64) -> BTreeMap<String, f64> {
    [("web/a".to_string(), a), ("web/b".to_string(), b), ("web/c".to_string(), c)].into()
}

#[test]
fn reweighting_moves_topic_ratios_and_resume_is_exact() {
    let dir = tempfile::tempdir().unwrap();
    // Validations at 0, 320 and 640 tokens.
    let losses = |tokens: u64| match tokens {
        0 => Some(web_losses(2.0, 2.0, 2.0)),
        320 => Some(web_losses(2.4, 2.0, 1.6)),
        640 => Some(web_losses(2.4, 2.2, 1.6)),
        _ => None,
    };
    let (all, acc, moves) = run_validated(dir.path(), "syne", None, &losses);
    assert_eq!(moves, 2);
    let ts = &acc.topics["web"];
    // Topic a got worse (more data), c improved (less).
    assert!(ts.ratios[0] > ts.initial_ratios[0] && ts.ratios[2] < ts.initial_ratios[2], "{ts:?}");
    assert!((ts.ratios.iter().sum::<f64>() - 1.0).abs() < 1e-12);
    for k in [1u64, 19, 20, 33, 150, 299] {
        let (resumed, acc2, _) = run_validated(dir.path(), "syne", Some(k), &losses);
        assert_eq!(resumed, all, "resumed at {k}");
        assert_eq!(acc2, acc, "account after resuming at {k}");
    }
}

#[test]
fn odm_and_ado_move_their_ratios_and_resume_exactly() {
    let dir = tempfile::tempdir().unwrap();
    // Validations every 320 tokens; per-topic losses falling as power laws of the tokens,
    // topic a the slowest and highest.
    let losses = |tokens: u64| {
        tokens.is_multiple_of(320).then(|| {
            let n = (tokens / SEQ as u64).max(1) as f64;
            web_losses(2.5 + 3.0 / n.powf(0.2), 1.8 + 6.0 / n.powf(0.5), 1.6 + 4.0 / n.powf(0.6))
        })
    };
    for mixer in ["odm", "ado"] {
        let (all, acc, moves) = run_validated(dir.path(), mixer, None, &losses);
        let ts = &acc.topics["web"];
        assert!(moves >= 10, "{mixer}: {moves} updates");
        assert!(ts.ratios != ts.initial_ratios && (ts.ratios.iter().sum::<f64>() - 1.0).abs() < 1e-9, "{mixer}: {ts:?}");
        assert!(ts.mixer.is_some(), "{mixer} keeps its state");
        if mixer == "odm" {
            // The highest loss is drawn most.
            assert!(ts.ratios[0] > ts.ratios[1] && ts.ratios[0] > ts.ratios[2], "{ts:?}");
        }
        for k in [7u64, 20, 41, 150, 299] {
            let (resumed, acc2, _) = run_validated(dir.path(), mixer, Some(k), &losses);
            assert_eq!(resumed, all, "{mixer} resumed at {k}");
            assert_eq!(acc2, acc, "{mixer}: account after resuming at {k}");
        }
    }
}

#[test]
fn a_plan_beyond_the_data_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    // 3200 + 1600 tokens: web needs 200 sequences, it has ~ 108 x 40 / 16 = 269 (fits at one
    // epoch); shrink the allowance below the quota.
    let e = stream(dir.path(), 0.5).err().expect("too little data");
    assert!(e.to_string().contains("allow more epochs"), "{e}");
}

/// The web source's documents in the order the stream reads them, per topic, with the
/// curriculum `order` and no perplexity scores at all.
fn web_order_without_scores(dir: &std::path::Path, order: &str) -> Result<Vec<Vec<i64>>> {
    let text = toml::to_string(&recipe(1.0)).unwrap().replace("order = \"ascending\"", &format!("order = \"{order}\""));
    let r = Recipe::from_str_at(&text, std::path::Path::new("t.toml")).unwrap();
    let notes = (0..120).map(|d| DocNote { topic: Some((d % 3) as u16), perplexity: None, heldout: d % 10 == 9 }).collect();
    let mut s = stream_of(dir, &r, notes, 1.0)?;
    let n = s.planned_sequences().unwrap();
    let mut per_topic = vec![Vec::new(); 3];
    for q in draw_all(&mut s, 0, n) {
        for &t in &q.tokens[..SEQ] {
            let d = t - WEB as i64;
            if (0..120).contains(&d) && per_topic[(d % 3) as usize].last() != Some(&d) {
                per_topic[(d % 3) as usize].push(d);
            }
        }
    }
    Ok(per_topic)
}

#[test]
fn curriculum_none_reads_corpus_order_and_shuffled_a_random_one() {
    let dir = tempfile::tempdir().unwrap();
    // The perplexity orders need scores ...
    let e = web_order_without_scores(dir.path(), "ascending").err().map(|e| e.to_string()).unwrap_or_default();
    assert!(e.contains("no perplexity score"), "{e}");
    // ... `none` and `shuffled` do not. `none`: every topic's documents in corpus order.
    let none = web_order_without_scores(dir.path(), "none").unwrap();
    for docs in &none {
        assert!(docs.len() > 10 && docs.windows(2).all(|w| w[0] < w[1]), "{docs:?}");
    }
    // `shuffled`: the same documents in a seeded random order (reproducible, not sorted).
    let shuffled = web_order_without_scores(dir.path(), "shuffled").unwrap();
    assert_eq!(shuffled, web_order_without_scores(dir.path(), "shuffled").unwrap());
    for docs in &shuffled {
        assert!(!docs.windows(2).all(|w| w[0] < w[1]), "{docs:?}");
        // The first tenth of the reading reaches past the first half of the corpus.
        assert!(docs[..docs.len() / 10 + 1].iter().any(|&d| d >= 60), "{docs:?}");
    }
}

#[test]
fn static_and_stratified_mixers_never_move_their_ratios() {
    let dir = tempfile::tempdir().unwrap();
    let losses: BTreeMap<String, f64> = [("web/a".to_string(), 2.4), ("web/b".to_string(), 2.0), ("web/c".to_string(), 1.6)].into();
    let run = |mixer: &str| -> (Vec<f64>, Vec<f64>, Account) {
        let text = toml::to_string(&recipe(1.0)).unwrap().replace("[topics]\n", &format!("[topics]\nmixer = \"{mixer}\"\n"));
        let r = Recipe::from_str_at(&text, std::path::Path::new("t.toml")).unwrap();
        assert_eq!(r.topics.as_ref().unwrap().mixer.is_syne(), mixer == "syne");
        let notes =
            (0..120).map(|d| DocNote { topic: Some(if d < 80 { 0 } else { 1 + (d % 2) as u16 }), perplexity: Some(d as f64), heldout: false }).collect();
        let mut s = stream_of(dir.path(), &r, notes, 1.0).unwrap();
        let start = s.state().unwrap().topics["web"].ratios.clone();
        let mut events = 0;
        for p in 0..40 {
            if p % 20 == 0 {
                events += s.observe_validation(p * SEQ as u64, &losses).unwrap().iter().filter(|e| e.ratios_after().is_some()).count();
            }
            s.sequence(p, false).unwrap();
        }
        let ratios = s.state().unwrap().topics["web"].ratios.clone();
        if mixer != "syne" {
            assert_eq!(events, 0, "{mixer} moved its ratios");
        }
        (start, ratios, s.account())
    };
    // Documents: 80 of topic a, 20 each of b and c → token shares 2/3, 1/6, 1/6.
    let (start, end, _) = run("static");
    assert!((start[0] - 2.0 / 3.0).abs() < 1e-9 && (start[1] - 1.0 / 6.0).abs() < 1e-9, "{start:?}");
    assert_eq!(start, end);
    let (start, end, acc) = run("stratified");
    assert!(start.iter().all(|r| (r - 1.0 / 3.0).abs() < 1e-12), "{start:?}");
    assert_eq!(start, end);
    // Stratified draws the topics evenly: about a third of the web tokens each.
    let topics = &acc.stages[0].consumed["web"].topics;
    let total: u64 = topics.values().sum();
    assert!(topics.values().all(|&t| (t as f64 / total as f64 - 1.0 / 3.0).abs() < 0.05), "{topics:?}");
    // The paper's rule moves them.
    let (start, end, _) = run("syne");
    assert_ne!(start, end);
}

const NEWS: u32 = 300_000;

/// Sources `web` (3 topics) and `book` in group `en`, `news` in group `zh`; `[source_mixing]`
/// over `en` with `mixer`, plus `extra` recipe text.
fn mixed_text(mixer: &str, extra: &str) -> String {
    format!(
        r#"
[run]
name = "t"
output = "out"
[sources.web]
language = "en"
topics = true
max_epochs = 2.0
[sources.book]
language = "en"
heldout_docs = 4
max_epochs = 2.0
[sources.news]
language = "zh"
max_epochs = 2.0
[[stages]]
name = "one"
tokens = 3200
groups = {{ en = 0.75, zh = 0.25 }}
[[stages]]
name = "two"
tokens = 1600
groups = {{ en = 0.5, zh = 0.5 }}
[mixture.en]
web = 0.75
book = 0.25
[mixture.zh]
news = 1.0
[topics]
interval_tokens = 320
mixer = "static"
[source_mixing]
groups = ["en"]
mixer = "{mixer}"
interval_tokens = 320
{extra}
"#
    )
}

fn mixed_recipe(mixer: &str, extra: &str) -> std::result::Result<Recipe, String> {
    Recipe::from_str_at(&mixed_text(mixer, extra), std::path::Path::new("t.toml")).map_err(|e| e.to_string())
}

fn mixed_stream(dir: &std::path::Path, r: &Recipe) -> Result<MixtureStream> {
    let schedule = Schedule::from_plan(&Plan::new(r), SEQ as u64, 1).unwrap();
    let notes = (0..120).map(|d| DocNote { topic: Some((d % 3) as u16), perplexity: None, heldout: d % 10 == 9 }).collect();
    let web = SourceInput {
        name: "web".into(),
        shards: vec![shard(dir, "web", WEB, 120, 40)],
        topics: vec!["a".into(), "b".into(), "c".into()],
        notes,
        curriculum: false,
        max_epochs: 2.0,
    };
    let book =
        SourceInput { name: "book".into(), shards: vec![shard(dir, "book", BOOK, 60, 50)], topics: vec![], notes: vec![], curriculum: false, max_epochs: 2.0 };
    let news =
        SourceInput { name: "news".into(), shards: vec![shard(dir, "news", NEWS, 60, 50)], topics: vec![], notes: vec![], curriculum: false, max_epochs: 2.0 };
    let settings = StreamSettings { seq_len: SEQ, seed: 3, curriculum: None, topics: r.topics.clone(), source_mixing: GroupMixing::from_recipe(r) };
    MixtureStream::new(schedule, vec![web, book, news], settings)
}

/// Per-domain losses: the book's held-out loss high and falling slowly, the web's low.
fn domain_losses(tokens: u64) -> Option<BTreeMap<String, f64>> {
    tokens.is_multiple_of(320).then(|| {
        let n = (tokens / SEQ as u64).max(1) as f64;
        let mut l = web_losses(2.0, 2.0, 2.0);
        l.insert("web".into(), 1.5 + 2.0 / n.powf(0.6));
        l.insert("book".into(), 3.0 + 1.0 / n.powf(0.2));
        l.insert("news".into(), 2.5);
        l
    })
}

/// Every sequence of the mixed run, validated every 320 tokens; killed before `stop_at` and
/// restored from the JSON round-tripped state when given.
fn run_mixed(dir: &std::path::Path, r: &Recipe, stop_at: Option<u64>) -> (Vec<PackedSequence>, Account, Vec<MixtureEvent>) {
    let mut s = mixed_stream(dir, r).unwrap();
    let n = s.planned_sequences().unwrap();
    let (mut out, mut events) = (Vec::new(), Vec::new());
    for p in 0..n {
        if let Some(l) = domain_losses(p * SEQ as u64) {
            events.extend(s.observe_validation(p * SEQ as u64, &l).unwrap());
        }
        if Some(p) == stop_at {
            let state: Option<MixtureState> = serde_json::from_str(&serde_json::to_string(&s.state()).unwrap()).unwrap();
            s = mixed_stream(dir, r).unwrap();
            s.restore(p, state.as_ref()).unwrap();
        }
        out.push(s.sequence(p, false).unwrap());
    }
    (out, s.account(), events)
}

#[test]
fn source_mixing_moves_sources_within_a_group_and_holds_the_group_share() {
    let dir = tempfile::tempdir().unwrap();
    let r = mixed_recipe("odm", "").unwrap();
    let (all, acc, events) = run_mixed(dir.path(), &r, None);
    let from = |q: &PackedSequence, base: u32, docs: i64| q.tokens.iter().all(|&t| (base as i64..base as i64 + docs).contains(&t));
    // The groups' shares of each stage are the plan's exactly: 150 + 50 en and zh sequences in
    // stage one, 50 + 50 in stage two.
    assert_eq!(all[..200].iter().filter(|q| from(q, NEWS, 60)).count(), 50);
    assert_eq!(all[200..].iter().filter(|q| from(q, NEWS, 60)).count(), 50);
    assert!(all.iter().all(|q| from(q, WEB, 120) || from(q, BOOK, 60) || from(q, NEWS, 60)));
    for st in &acc.stages {
        let en = |m: &BTreeMap<String, Consumed>| m.get("web").map_or(0, |c| c.tokens) + m.get("book").map_or(0, |c| c.tokens);
        let planned_en: u64 = ["web", "book"].iter().map(|s| st.planned_tokens.get(*s).copied().unwrap_or(0)).sum();
        assert_eq!(en(&st.consumed), planned_en, "stage {}", st.name);
        assert_eq!(st.consumed["news"].tokens, st.planned_tokens["news"]);
    }
    // ODM draws the source with the higher loss more: the book gains on its 0.25 start.
    let g = &acc.groups["en"];
    assert_eq!(g.topics, ["book", "web"]);
    assert!((g.initial_ratios[0] - 0.25).abs() < 1e-12, "{g:?}");
    assert!(g.ratios[0] > 0.3 && (g.ratios.iter().sum::<f64>() - 1.0).abs() < 1e-9, "{g:?}");
    let book: u64 = acc.stages.iter().map(|st| st.consumed["book"].tokens).sum();
    let web: u64 = acc.stages.iter().map(|st| st.consumed["web"].tokens).sum();
    assert!(book as f64 / (book + web) as f64 > 0.28, "book {book} web {web}");
    // Its events are logged under `group:en`, beside the topic source's baseline.
    assert!(events.iter().any(|e| e.source() == "group:en" && e.ratios_after().is_some()));
    assert!(events.iter().any(|e| e.source() == "web"));
    // Killed anywhere, a restored stream draws the same sequences.
    for k in [1u64, 20, 41, 150, 299] {
        let (resumed, acc2, _) = run_mixed(dir.path(), &r, Some(k));
        assert_eq!(resumed, all, "resumed at {k}");
        assert_eq!(acc2, acc, "account after resuming at {k}");
    }
    // `static` keeps the recipe's shares: the book gets a quarter of the en slots.
    let (_, acc, events) = run_mixed(dir.path(), &mixed_recipe("static", "").unwrap(), None);
    assert!(events.iter().all(|e| e.source() != "group:en" || e.ratios_after().is_none()));
    let book: u64 = acc.stages.iter().map(|st| st.consumed["book"].tokens).sum();
    let web: u64 = acc.stages.iter().map(|st| st.consumed["web"].tokens).sum();
    assert!((book as f64 / (book + web) as f64 - 0.25).abs() < 0.01, "book {book} web {web}");
    // A checkpoint of a run without the group mixing is refused.
    let mut plain = stream(dir.path(), 1.0).unwrap();
    let mut mixed = mixed_stream(dir.path(), &r).unwrap();
    mixed.sequence(0, false).unwrap();
    plain.sequence(0, false).unwrap();
    assert!(mixed.restore(1, plain.state().as_ref()).is_err());
}

#[test]
fn source_mixing_recipes_are_checked() {
    let parse = |text: String| Recipe::from_str_at(&text, std::path::Path::new("t.toml")).map(|_| ()).map_err(|e| e.to_string());
    parse(mixed_text("odm", "")).unwrap();
    let e = parse(mixed_text("odm", "weights = { news = 2.0 }")).unwrap_err();
    assert!(e.contains("source_mixing.weights.news"), "{e}");
    // A source of a group a moving mixer reads needs a held-out set; `static` needs none.
    let e = parse(mixed_text("ado", "").replace("heldout_docs = 4\n", "")).unwrap_err();
    assert!(e.contains("sources.book.heldout_docs"), "{e}");
    parse(mixed_text("static", "").replace("heldout_docs = 4\n", "")).unwrap();
    // One source mixture over the stages.
    let e = parse(mixed_text("odm", "").replace("en = 0.5, zh = 0.5 }", "en = 0.5, zh = 0.5 }\nmixture = { en = { web = 0.5, book = 0.5 } }")).unwrap_err();
    assert!(e.contains("stages[1].mixture.en"), "{e}");
    let e = parse(mixed_text("odm", "").replace("groups = [\"en\"]", "groups = [\"fr\"]")).unwrap_err();
    assert!(e.contains("source_mixing.groups[0]") && e.contains("fr"), "{e}");
}
