//! Golden test: `recipes/paper.toml` reproduces the paper's token table exactly
//! (reference/paper-spec.md §2.1): per-source tokens of both stages and the whole-run
//! category totals.

use std::path::PathBuf;

use syne_mix::plan::Plan;
use syne_mix::recipe::Recipe;

fn paper() -> Recipe {
    Recipe::load(&PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../recipes/paper.toml")).unwrap()
}

const M: u64 = 1_000_000;

#[test]
fn the_paper_token_table() {
    let plan = Plan::new(&paper());
    assert_eq!(plan.total_tokens, 100_000 * M);
    let stage = |s: usize| -> std::collections::BTreeMap<String, u64> { plan.stages[s].sources.iter().map(|x| (x.source.clone(), x.tokens)).collect() };
    let one = stage(0);
    let want_one = [
        ("web-cn", 12_950),
        ("encyclopedia-cn", 925),
        ("book-cn", 3_700),
        ("qa_forum-cn", 925),
        ("web-en", 29_600),
        ("encyclopedia-en", 3_700),
        ("book-en", 11_100),
        ("qa_forum-en", 3_700),
        ("paper-en", 7_400),
        ("math-en", 7_400),
        ("code-en", 11_100),
    ];
    for (s, t) in want_one {
        assert_eq!(one[s], t * M, "stage I {s}");
    }
    assert!(!one.contains_key("synthesis-en"), "no synthetic data in stage I");
    assert_eq!(one.values().sum::<u64>(), 92_500 * M);
    let two = stage(1);
    let want_two = [
        ("web-cn", 525_000_000),
        ("encyclopedia-cn", 37_500_000),
        ("book-cn", 150_000_000),
        ("qa_forum-cn", 37_500_000),
        ("web-en", 2_100_000_000),
        ("encyclopedia-en", 262_500_000),
        ("book-en", 787_500_000),
        ("qa_forum-en", 262_500_000),
        ("paper-en", 525_000_000),
        ("math-en", 525_000_000),
        ("code-en", 787_500_000),
        ("synthesis-en", 1_500_000_000),
    ];
    for (s, t) in want_two {
        assert_eq!(two[s], t, "stage II {s}");
    }
    assert_eq!(two.values().sum::<u64>(), 7_500 * M);
    // Whole-run category totals: web 45.175B, encyclopedia 4.925B, books 15.7375B, QA forums
    // 4.925B, papers 7.925B, math 7.925B, code 11.8875B, synthetic 1.5B.
    let want_cat = [
        ("web", 45_175_000_000u64),
        ("encyclopedia", 4_925_000_000),
        ("books", 15_737_500_000),
        ("qa_forums", 4_925_000_000),
        ("papers", 7_925_000_000),
        ("math", 7_925_000_000),
        ("code", 11_887_500_000),
        ("synthetic", 1_500_000_000),
    ];
    assert_eq!(plan.categories, want_cat.iter().map(|(c, t)| (c.to_string(), *t)).collect());
    // Languages: CN 19.25B, EN 79.25B, SYN 1.5B.
    assert_eq!(plan.groups["zh"], 19_250 * M);
    assert_eq!(plan.groups["en"], 79_250 * M);
    assert_eq!(plan.groups["syn"], 1_500 * M);
    let md = plan.markdown();
    assert!(md.contains("| web-cn | zh | web | 0.1400 | 12950000000 |") && md.contains("| web | 45175000000 | 45.18% |"), "{md}");
}

#[test]
fn recipe_errors_name_the_key() {
    let base = std::fs::read_to_string(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../recipes/paper.toml")).unwrap();
    let path = std::path::Path::new("paper.toml");
    let cases = [
        ("groups = { zh = 0.2, en = 0.8 }", "groups = { zh = 0.3, en = 0.8 }", "`stages[0].groups`: ratios sum to 1.1"),
        ("web-cn = 0.70", "web-cn = 0.75", "`mixture.zh`: ratios sum to"),
        ("synthesis-en = 1.0", "synthesis-en = 1.0\nweb-cn = 0.0", "`mixture.syn.web-cn`: source `web-cn` is in group `zh`"),
        ("order = \"ascending\"", "order = \"upwards\"", "`curriculum.order`"),
        ("tokens = 7_500_000_000", "tokens = 0", "`stages[1].tokens`"),
        ("[mixture.syn]\nsynthesis-en = 1.0", "", "`stages[1].groups.syn`: no [mixture.syn]"),
        ("name = \"llama-3-syne\"", "name = \"x\"\ncolour = \"red\"", "unknown field `colour`"),
        ("[topics]\n", "[topics]\nmixer = \"ado\"\nado = { smoothing = 1.0 }\n", "`topics.ado.smoothing`: must be in [0, 1)"),
        ("[topics]\n", "[topics]\nmixer = \"odm\"\nodm = { reward_scale = 0.0 }\n", "`topics.odm.reward_scale`: must be positive"),
        ("[topics]\n", "[topics]\nmixer = \"bandit\"\n", "unknown variant `bandit`"),
    ];
    for (from, to, want) in cases {
        assert!(base.contains(from), "{from}");
        let e = Recipe::from_str_at(&base.replacen(from, to, 1), path).unwrap_err().to_string();
        assert!(e.contains("paper.toml") && e.contains(want), "{to}: {e}");
    }
}

#[test]
fn the_paper_schedule_draws_every_planned_sequence() {
    use syne_mix::sampler::Schedule;
    let plan = Plan::new(&paper());
    // The paper's batch: 512 sequences of 8,192 tokens per optimizer step. 92.5B tokens are
    // 11,291,503.9 sequences = 22,053.7 steps → 22,054 steps; 7.5B are 1,788.1 steps → 1,788.
    let s = Schedule::from_plan(&plan, 8192, 512).unwrap();
    assert_eq!(s.stages[0].sequences, 22_054 * 512);
    assert_eq!(s.stages[1].sequences, 1_788 * 512);
    let r = s.rounding();
    assert_eq!((r[0].steps, r[0].difference), (22_054, 22_054 * 512 * 8192 - 92_500_000_000));
    assert_eq!((r[1].steps, r[1].difference), (1_788, 1_788 * 512 * 8192 - 7_500_000_000));
    assert!(r.iter().all(|r| r.difference.unsigned_abs() <= 512 * 8192 / 2), "within half a step");
    // With one sequence per step each stage is its tokens / seq_len, rounded to the nearest.
    let per_sequence = Schedule::from_plan(&plan, 8192, 1).unwrap();
    assert_eq!(per_sequence.stages[0].sequences, 11_291_504);
    assert_eq!(per_sequence.stages[1].sequences, 915_527);
    let e = Schedule::from_plan(&plan, 8192, 1_000_000).unwrap_err().to_string();
    assert!(e.contains("stages[1].tokens") && e.contains("less than one optimizer step"), "{e}");
    // Draw all of stage II (915,527 sequences) from a cursor resumed at its start.
    let start = s.stages[0].sequences;
    let t = std::time::Instant::now();
    let mut c = s.cursor(start);
    let resumed_in = t.elapsed();
    let mut n = 0u64;
    for d in c.by_ref() {
        assert_eq!(d.stage, 1);
        n += 1;
    }
    assert_eq!(n, s.stages[1].sequences);
    assert_eq!(c.drawn()[1], s.stages[1].quotas, "consumed equals planned");
    // Per-source sequences differ from the plan's tokens by at most the stage's rounding, spread
    // over its sources (plus the sequence each source's own rounding may cost).
    let spread = r[1].difference.unsigned_abs().div_ceil(8192).div_ceil(s.stages[1].sources.len() as u64) + 1;
    for (j, &src) in s.stages[1].sources.iter().enumerate() {
        let planned = plan.stages[1].sources.iter().find(|x| x.source == s.sources[src]).unwrap().tokens;
        assert!((s.stages[1].quotas[j] as i64 * 8192 - planned as i64).unsigned_abs() <= 8192 * spread, "{}", s.sources[src]);
    }
    println!("resume over {start} sequences: {resumed_in:?}");
}
