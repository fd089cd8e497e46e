//! syne-recipe on the project's real recipes: every one loads typed, writes back to TOML and
//! reads back equal; bad values are refused with the key that holds them.

use std::path::{Path, PathBuf};

use syne_recipe::prepare::{FilterOverrides, QualityConfig};
use syne_recipe::{CurriculumOrder, LrSchedule, Recipe};

fn recipes() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../recipes");
    let mut v: Vec<PathBuf> = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().path()).filter(|p| p.extension().is_some_and(|e| e == "toml")).collect();
    v.sort();
    v
}

#[test]
fn every_recipe_round_trips_through_toml() {
    let mut n = 0;
    for path in recipes() {
        let text = std::fs::read_to_string(&path).unwrap();
        // synth-smollm2.toml is a `syne synth` file, not a whole recipe.
        if !text.contains("[[stages]]") {
            continue;
        }
        let r = Recipe::load(&path).unwrap_or_else(|e| panic!("{e}"));
        let back = toml::to_string(&r).unwrap();
        let mut again = Recipe::from_str_at(&back, &path).unwrap();
        again.path = r.path.clone();
        assert_eq!(again, r, "{}", path.display());
        n += 1;
    }
    assert!(n >= 2, "demo.toml and paper.toml");
}

#[test]
fn the_demo_recipe_is_typed_and_anchored() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../recipes/demo.toml");
    let r = Recipe::load(&path).unwrap();
    let repo = syne_recipe::clean_path(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../.."));
    assert_eq!(r.run.output, repo.join("runs/demo"));
    assert_eq!(r.prepare.as_ref().unwrap().tokenizer, repo.join("assets/models/SmolLM2-135M-Instruct.Q4_1.gguf"));
    assert_eq!(r.curriculum.as_ref().unwrap().order, CurriculumOrder::Ascending);
    assert!(matches!(r.train.as_ref().unwrap().schedule, LrSchedule::WarmupStableDecay { total_tokens: 81_920, .. }));
    // Filters: Gopher's defaults, then [prepare.filters], then the source's own.
    let prepare = r.prepare.as_ref().unwrap();
    let tech = r.sources["zh-tech"].filters.apply(prepare.filters.apply(QualityConfig::default()));
    assert_eq!(tech.min_chars, Some(20));
    assert_eq!(tech.max_symbol_frac, Some(0.4));
    assert_eq!(tech.max_digit_frac, QualityConfig::default().max_digit_frac);
    let synth = r.sources["synthesis-en"].filters.apply(QualityConfig::default());
    assert!(synth.top_ngram_char_frac.is_empty());
    assert_eq!(FilterOverrides::default().apply(QualityConfig::permissive()), QualityConfig::permissive());
}

#[test]
fn bad_values_name_their_key() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../recipes/demo.toml");
    let text = std::fs::read_to_string(&path).unwrap();
    let err = |from: &str, to: &str| {
        assert!(text.contains(from), "{from}");
        Recipe::from_str_at(&text.replacen(from, to, 1), &path).unwrap_err().to_string()
    };
    assert!(err("groups = { zh = 0.1, en = 0.7, syn = 0.2 }", "groups = { zh = 0.1, en = 0.7, syn = 0.3 }").contains("stages[1].groups"));
    assert!(err("order = \"ascending\"", "order = \"upwards\"").contains("curriculum.order"));
    assert!(err("min_chars = 20", "min_charz = 20").contains("min_charz"));
    assert!(err("seq_len = 256", "seq_len = 300").contains("train.global_batch_tokens"));
    assert!(err("limit = 200", "limit = 0").contains("eval.limit"));
    assert!(err("concurrency = 12", "concurrency = 0").contains("synth.backend.concurrency"));
    assert!(err("language = \"zh\"", "language = \"fr\"").contains("language"));
    let e = err("[eval]\n", "[eval]\nbatch = 3\n");
    assert!(e.contains("eval") && e.contains("batch"), "{e}");
}
