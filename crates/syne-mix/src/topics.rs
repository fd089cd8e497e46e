//! A fastText-style linear topic classifier, trained and applied in Rust.
//!
//! Features: lower-cased word unigrams and bigrams and character n-grams (3–5, with word
//! boundaries) of Latin-script words; character unigrams and bigrams of CJK runs; every feature
//! hashed (xxh3) into `buckets` rows. A document is the mean of its features' rows of an
//! embedding matrix (`buckets × dim`), followed by a linear layer and a softmax over the topics
//! (fastText's architecture), trained with SGD on the cross-entropy, the learning rate decaying
//! linearly to zero, in a seeded order: the same data and settings give the same model.
//!
//! The default taxonomy has the 11 English topics below, derived from MMLU's subject groups
//! (three of them are the names in the paper's Figure 1); [`mmlu_topic`] maps each of the 57
//! MMLU subjects to one, which makes MMLU real labelled text for training and held-out macro-F1.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use xxhash_rust::xxh3::xxh3_64_with_seed;

use crate::error::{MixError, Result};

/// The 11 English topics.
pub const ENGLISH_TOPICS: [&str; 11] = [
    "Mathematics",
    "Physics and Astronomy",
    "Chemistry",
    "Biology and Medicine",
    "Computer Science and Engineering",
    "History and Geography",
    "Law and Politics",
    "Economics and Business",
    "Psychology and Sociology",
    "Philosophy and Religion",
    "General Knowledge and Culture",
];

/// The English topic of an MMLU subject.
pub fn mmlu_topic(subject: &str) -> Option<&'static str> {
    let t = match subject {
        "abstract_algebra" | "college_mathematics" | "elementary_mathematics" | "high_school_mathematics" | "high_school_statistics" => 0,
        "astronomy" | "college_physics" | "conceptual_physics" | "high_school_physics" => 1,
        "college_chemistry" | "high_school_chemistry" => 2,
        "anatomy"
        | "clinical_knowledge"
        | "college_biology"
        | "college_medicine"
        | "high_school_biology"
        | "medical_genetics"
        | "nutrition"
        | "professional_medicine"
        | "virology"
        | "human_aging" => 3,
        "college_computer_science" | "computer_security" | "high_school_computer_science" | "machine_learning" | "electrical_engineering" => 4,
        "high_school_european_history" | "high_school_us_history" | "high_school_world_history" | "prehistory" | "high_school_geography" => 5,
        "international_law" | "jurisprudence" | "professional_law" | "high_school_government_and_politics" | "us_foreign_policy" | "security_studies" => 6,
        "econometrics"
        | "high_school_macroeconomics"
        | "high_school_microeconomics"
        | "business_ethics"
        | "management"
        | "marketing"
        | "professional_accounting"
        | "public_relations" => 7,
        "high_school_psychology" | "professional_psychology" | "sociology" | "human_sexuality" => 8,
        "philosophy" | "moral_disputes" | "moral_scenarios" | "world_religions" | "formal_logic" | "logical_fallacies" => 9,
        "global_facts" | "miscellaneous" => 10,
        _ => return None,
    };
    Some(ENGLISH_TOPICS[t])
}

/// The 11 Chinese topics, derived from CMMLU's subject groups the same way (the paper defines
/// its Chinese topics by CMMLU's categories; CMMLU adds China-specific subjects, which go to the
/// topic of their field, and "Chinese Language and Literature" replaces the English
/// "Psychology and Sociology", which joins law and politics as social science).
pub const CHINESE_TOPICS: [&str; 11] = [
    "数学",             // mathematics
    "物理与天文",       // physics and astronomy
    "化学",             // chemistry
    "生物与医学",       // biology and medicine
    "计算机科学与工程", // computer science and engineering
    "历史与地理",       // history and geography
    "法律、政治与社会", // law, politics and society
    "经济与管理",       // economics and management
    "语言与文学",       // Chinese language and literature
    "哲学、宗教与思想", // philosophy, religion and thought
    "常识与文化",       // general knowledge and culture
];

/// The Chinese topic of a CMMLU subject (its 67 subject names).
pub fn cmmlu_topic(subject: &str) -> Option<&'static str> {
    let t = match subject {
        "college_mathematics" | "elementary_mathematics" | "high_school_mathematics" | "college_actuarial_science" | "college_medical_statistics" => 0,
        "astronomy" | "conceptual_physics" | "high_school_physics" => 1,
        "high_school_chemistry" | "food_science" => 2,
        "anatomy"
        | "clinical_knowledge"
        | "college_medicine"
        | "genetics"
        | "high_school_biology"
        | "nutrition"
        | "professional_medicine"
        | "traditional_chinese_medicine"
        | "virology"
        | "agronomy"
        | "human_sexuality"
        | "sports_science" => 3,
        "computer_science"
        | "computer_security"
        | "machine_learning"
        | "electrical_engineering"
        | "elementary_information_and_technology"
        | "college_engineering_hydrology"
        | "construction_project_management" => 4,
        "chinese_history" | "world_history" | "high_school_geography" | "ethnology" => 5,
        "college_law"
        | "international_law"
        | "jurisprudence"
        | "professional_law"
        | "legal_and_moral_basis"
        | "high_school_politics"
        | "chinese_foreign_policy"
        | "security_study"
        | "sociology"
        | "professional_psychology"
        | "chinese_civil_service_exam"
        | "chinese_driving_rule"
        | "education"
        | "college_education"
        | "chinese_teacher_qualification"
        | "journalism" => 6,
        "economics" | "business_ethics" | "management" | "marketing" | "professional_accounting" | "public_relations" => 7,
        "ancient_chinese" | "chinese_literature" | "elementary_chinese" | "modern_chinese" => 8,
        "philosophy" | "marxist_theory" | "world_religions" | "logical" => 9,
        "global_facts" | "elementary_commonsense" | "chinese_food_culture" | "arts" => 10,
        _ => return None,
    };
    Some(CHINESE_TOPICS[t])
}

/// The paper's labelling prompt (reference/paper-spec.md §4.1): sort the article into one of the
/// topics, answer only the topic's name. The article is cut to `max_chars` characters.
pub fn labelling_prompt(topics: &[&str], article: &str, max_chars: usize) -> String {
    let cut: String = article.trim().chars().take(max_chars).collect();
    format!(
        "You are categorizing articles according to the following {} topics:\n{}\n\nArticle:\n{}\n\nChoose the single topic this article is most related to. Answer with only the topic name.\nTopic:",
        topics.len(),
        topics.iter().map(|t| format!("- {t}")).collect::<Vec<_>>().join("\n"),
        cut.trim()
    )
}

/// The topic an LLM's answer names: an exact match (ignoring case, surrounding punctuation and
/// a leading "Topic:"), else the topic whose name appears first in the answer; `None` when no
/// topic is named.
pub fn parse_topic<'a>(answer: &str, topics: &[&'a str]) -> Option<&'a str> {
    let a = answer.trim().trim_start_matches("Topic:").trim_start_matches("topic:").trim();
    let a = a.trim_matches(|c: char| c.is_ascii_punctuation() || c.is_whitespace() || "。：“”".contains(c)).to_lowercase();
    if let Some(t) = topics.iter().find(|t| t.to_lowercase() == a) {
        return Some(t);
    }
    topics.iter().filter_map(|t| a.find(&t.to_lowercase()).map(|i| (i, *t))).min_by_key(|(i, t)| (*i, std::cmp::Reverse(t.len()))).map(|(_, t)| t)
}

fn is_cjk(c: char) -> bool {
    matches!(c as u32, 0x3400..=0x4DBF | 0x4E00..=0x9FFF | 0xF900..=0xFAFF | 0x20000..=0x2FA1F | 0x3040..=0x30FF | 0xAC00..=0xD7AF)
}

/// Hashed feature ids of a text (see the module docs), each in `0..buckets`.
pub fn features(text: &str, buckets: u64, out: &mut Vec<u64>) {
    out.clear();
    let h = |kind: u64, s: &str| xxh3_64_with_seed(s.as_bytes(), kind) % buckets;
    let mut prev_word: Option<String> = None;
    let mut cjk_prev: Option<char> = None;
    let mut word = String::new();
    let flush = |word: &mut String, prev: &mut Option<String>, out: &mut Vec<u64>| {
        if word.is_empty() {
            return;
        }
        out.push(h(1, word));
        if let Some(p) = prev.as_ref() {
            out.push(h(2, &format!("{p} {word}")));
        }
        let chars: Vec<char> = format!("<{word}>").chars().collect();
        for n in 3..=5 {
            for w in chars.windows(n) {
                out.push(h(3, &w.iter().collect::<String>()));
            }
        }
        *prev = Some(std::mem::take(word));
    };
    for c in text.chars() {
        if is_cjk(c) {
            flush(&mut word, &mut prev_word, out);
            let mut buf = [0u8; 8];
            out.push(h(4, c.encode_utf8(&mut buf)));
            if let Some(p) = cjk_prev {
                out.push(h(5, &format!("{p}{c}")));
            }
            cjk_prev = Some(c);
        } else if c.is_alphanumeric() {
            cjk_prev = None;
            word.extend(c.to_lowercase());
        } else {
            cjk_prev = None;
            flush(&mut word, &mut prev_word, out);
        }
    }
    flush(&mut word, &mut prev_word, out);
}

/// Training settings.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ClassifierSettings {
    /// Hash buckets of the feature embeddings.
    pub buckets: u64,
    /// Embedding dimension.
    pub dim: usize,
    /// Passes over the examples.
    pub epochs: usize,
    /// Initial SGD learning rate (decays linearly to 0).
    pub learning_rate: f32,
    /// Seed of the initialisation and the example order.
    pub seed: u64,
}

impl Default for ClassifierSettings {
    fn default() -> Self {
        ClassifierSettings { buckets: 1 << 20, dim: 32, epochs: 10, learning_rate: 0.5, seed: 1 }
    }
}

/// A trained classifier.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TopicModel {
    /// The topics, in output order.
    pub labels: Vec<String>,
    /// Hash buckets of the feature embeddings.
    pub buckets: u64,
    /// Embedding dimension.
    pub dim: usize,
    /// `buckets × dim`, row-major.
    #[serde(skip)]
    pub embeddings: Vec<f32>,
    /// `labels × dim`, row-major, and the biases.
    #[serde(skip)]
    pub output: Vec<f32>,
    /// Output bias, one per topic.
    #[serde(skip)]
    pub bias: Vec<f32>,
}

impl TopicModel {
    fn hidden(&self, feats: &[u64], h: &mut [f32]) {
        h.iter_mut().for_each(|x| *x = 0.0);
        for &f in feats {
            let row = &self.embeddings[f as usize * self.dim..(f as usize + 1) * self.dim];
            h.iter_mut().zip(row).for_each(|(a, b)| *a += b);
        }
        let n = feats.len().max(1) as f32;
        h.iter_mut().for_each(|x| *x /= n);
    }

    fn probs(&self, h: &[f32], p: &mut [f32]) {
        for (k, pk) in p.iter_mut().enumerate() {
            *pk = self.bias[k] + self.output[k * self.dim..(k + 1) * self.dim].iter().zip(h).map(|(w, x)| w * x).sum::<f32>();
        }
        let m = p.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let z: f32 = p
            .iter_mut()
            .map(|x| {
                *x = (*x - m).exp();
                *x
            })
            .sum();
        p.iter_mut().for_each(|x| *x /= z);
    }

    /// Train on `(text, label)` pairs; `labels` fixes the label order.
    pub fn train(examples: &[(String, String)], labels: &[String], cfg: &ClassifierSettings) -> Result<TopicModel> {
        if examples.is_empty() || labels.len() < 2 {
            return Err(MixError::Plan("topic training needs examples and at least two labels".into()));
        }
        let index = |l: &str| labels.iter().position(|x| x == l);
        let mut data: Vec<(Vec<u64>, usize)> = Vec::with_capacity(examples.len());
        let mut f = Vec::new();
        for (text, label) in examples {
            let y = index(label).ok_or_else(|| MixError::Plan(format!("label `{label}` is not one of the topics {labels:?}")))?;
            features(text, cfg.buckets, &mut f);
            if !f.is_empty() {
                data.push((f.clone(), y));
            }
        }
        let (k, d) = (labels.len(), cfg.dim);
        debug_assert!(k >= 2);
        let mut rng = cfg.seed;
        let bound = 1.0 / d as f32;
        let embeddings: Vec<f32> =
            (0..cfg.buckets as usize * d).map(|_| ((syne_data::text::splitmix64(&mut rng) >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0) * bound).collect();
        let mut m = TopicModel { labels: labels.to_vec(), buckets: cfg.buckets, dim: d, embeddings, output: vec![0.0; k * d], bias: vec![0.0; k] };
        let total = (cfg.epochs * data.len()) as f32;
        let mut seen = 0f32;
        let (mut h, mut p, mut grad_h) = (vec![0f32; d], vec![0f32; k], vec![0f32; d]);
        let mut order: Vec<usize> = (0..data.len()).collect();
        for _ in 0..cfg.epochs {
            // Fisher–Yates with the seeded generator.
            for i in (1..order.len()).rev() {
                order.swap(i, (syne_data::text::splitmix64(&mut rng) % (i as u64 + 1)) as usize);
            }
            for &i in &order {
                let lr = cfg.learning_rate * (1.0 - seen / total);
                seen += 1.0;
                let (feats, y) = &data[i];
                m.hidden(feats, &mut h);
                m.probs(&h, &mut p);
                grad_h.iter_mut().for_each(|g| *g = 0.0);
                for (c, (pc, w)) in p.iter().zip(m.output.chunks_exact_mut(d)).enumerate() {
                    // d loss / d logit_c = p_c - [c = y]
                    let g = pc - if c == *y { 1.0 } else { 0.0 };
                    for ((gh, wj), hj) in grad_h.iter_mut().zip(w.iter_mut()).zip(&h) {
                        *gh += g * *wj;
                        *wj -= lr * g * hj;
                    }
                    m.bias[c] -= lr * g;
                }
                let scale = lr / feats.len() as f32;
                for &f in feats {
                    let row = &mut m.embeddings[f as usize * d..(f as usize + 1) * d];
                    row.iter_mut().zip(&grad_h).for_each(|(e, g)| *e -= scale * g);
                }
            }
        }
        Ok(m)
    }

    /// The most likely topic of a text and its probability (`None` for a text without features).
    pub fn predict(&self, text: &str) -> Option<(&str, f32)> {
        let mut f = Vec::new();
        features(text, self.buckets, &mut f);
        if f.is_empty() {
            return None;
        }
        let (mut h, mut p) = (vec![0f32; self.dim], vec![0f32; self.labels.len()]);
        self.hidden(&f, &mut h);
        self.probs(&h, &mut p);
        let (best, prob) = p.iter().copied().enumerate().fold((0, f32::NEG_INFINITY), |a, (i, x)| if x > a.1 { (i, x) } else { a });
        Some((&self.labels[best], prob))
    }

    fn weight_bytes(&self) -> Vec<u8> {
        let mut w = Vec::with_capacity((self.embeddings.len() + self.output.len() + self.bias.len()) * 4);
        for x in self.embeddings.iter().chain(&self.output).chain(&self.bias) {
            w.extend_from_slice(&x.to_le_bytes());
        }
        w
    }

    /// A hash of the whole model (settings, labels and weights): two models with the same
    /// fingerprint label every document alike.
    pub fn fingerprint(&self) -> String {
        let mut bytes = serde_json::to_vec(self).expect("json");
        bytes.extend(self.weight_bytes());
        format!("{:032x}", xxhash_rust::xxh3::xxh3_128(&bytes))
    }

    /// The files of a model saved as `path`: the header and its weights.
    pub fn files(path: &Path) -> [PathBuf; 2] {
        [path.to_path_buf(), weights_path(path)]
    }

    /// Save as `PATH` (JSON header) + `PATH.weights` (little-endian f32), each written atomically.
    pub fn save(&self, path: &Path) -> Result<()> {
        let header = serde_json::to_vec_pretty(self).expect("json");
        syne_data::io::write_atomic(&weights_path(path), &self.weight_bytes())?;
        syne_data::io::write_atomic(path, &header)?;
        Ok(())
    }

    /// Read a model written by [`TopicModel::save`]; errors name the file.
    pub fn load(path: &Path) -> Result<TopicModel> {
        let bad = |d: String| MixError::TopicModel { path: path.to_path_buf(), detail: d };
        let header = std::fs::read(path).map_err(|e| syne_data::DataError::io(path, "cannot read topic model", e))?;
        let mut m: TopicModel = serde_json::from_slice(&header).map_err(|e| bad(format!("not a topic model: {e}")))?;
        let wp = weights_path(path);
        let w = std::fs::read(&wp).map_err(|e| syne_data::DataError::io(&wp, "cannot read topic model weights", e))?;
        let (e, o, b) = (m.buckets as usize * m.dim, m.labels.len() * m.dim, m.labels.len());
        if w.len() != (e + o + b) * 4 {
            return Err(bad(format!(
                "{} holds {} bytes, {} expected for {} buckets × {} dims and {} topics",
                wp.display(),
                w.len(),
                (e + o + b) * 4,
                m.buckets,
                m.dim,
                b
            )));
        }
        let floats: Vec<f32> = w.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect();
        m.embeddings = floats[..e].to_vec();
        m.output = floats[e..e + o].to_vec();
        m.bias = floats[e + o..].to_vec();
        Ok(m)
    }
}

fn weights_path(path: &Path) -> PathBuf {
    let mut p = path.as_os_str().to_owned();
    p.push(".weights");
    p.into()
}

/// Macro-averaged F1 over `labels` of predictions against gold labels.
pub fn macro_f1(gold: &[&str], pred: &[&str], labels: &[String]) -> f64 {
    let mut sum = 0.0;
    for l in labels {
        let tp = gold.iter().zip(pred).filter(|(g, p)| **g == l && **p == l).count() as f64;
        let fp = gold.iter().zip(pred).filter(|(g, p)| **g != l && **p == l).count() as f64;
        let fne = gold.iter().zip(pred).filter(|(g, p)| **g == l && **p != l).count() as f64;
        sum += if tp == 0.0 { 0.0 } else { 2.0 * tp / (2.0 * tp + fp + fne) };
    }
    sum / labels.len().max(1) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn features_cover_words_bigrams_subwords_and_cjk() {
        let mut f = Vec::new();
        features("Hello world", 1 << 20, &mut f);
        // 2 words + 1 bigram + char 3..5-grams of "<hello>" (5+4+3) and "<world>" (5+4+3).
        assert_eq!(f.len(), 2 + 1 + 12 + 12);
        features("物理学", 1 << 20, &mut f);
        assert_eq!(f.len(), 3 + 2);
        let mut g = Vec::new();
        features("HELLO world", 1 << 20, &mut g);
        let mut h = Vec::new();
        features("Hello world", 1 << 20, &mut h);
        assert_eq!(g, h, "lower-cased");
        features("  ,,, ", 16, &mut f);
        assert!(f.is_empty());
    }

    #[test]
    fn learns_a_separable_toy_problem_deterministically() {
        let labels = vec!["math".to_string(), "bio".to_string()];
        let ex: Vec<(String, String)> = (0..40)
            .map(|i| {
                if i % 2 == 0 {
                    (format!("solve the equation x + {i} = 0 algebra"), "math".into())
                } else {
                    (format!("the cell membrane protein {i} enzyme"), "bio".into())
                }
            })
            .collect();
        let cfg = ClassifierSettings { buckets: 1 << 12, dim: 8, epochs: 20, ..Default::default() };
        let a = TopicModel::train(&ex, &labels, &cfg).unwrap();
        let b = TopicModel::train(&ex, &labels, &cfg).unwrap();
        assert_eq!(a.embeddings, b.embeddings);
        assert_eq!(a.predict("an algebra equation").unwrap().0, "math");
        assert_eq!(a.predict("enzyme in the cell").unwrap().0, "bio");
        let dir = tempfile::tempdir().unwrap();
        a.save(&dir.path().join("m.json")).unwrap();
        let c = TopicModel::load(&dir.path().join("m.json")).unwrap();
        assert_eq!(c.predict("enzyme in the cell"), a.predict("enzyme in the cell"));
        assert!((macro_f1(&["a", "b", "a"], &["a", "b", "b"], &["a".into(), "b".into()]) - (2.0 / 3.0 + 2.0 / 3.0) / 2.0).abs() < 1e-12);
    }

    #[test]
    fn taxonomies_and_the_labelling_prompt() {
        // Every CMMLU subject has a Chinese topic, and every topic has subjects.
        let cmmlu = "agronomy anatomy ancient_chinese arts astronomy business_ethics chinese_civil_service_exam chinese_driving_rule chinese_food_culture \
            chinese_foreign_policy chinese_history chinese_literature chinese_teacher_qualification clinical_knowledge college_actuarial_science college_education \
            college_engineering_hydrology college_law college_mathematics college_medical_statistics college_medicine computer_science computer_security \
            conceptual_physics construction_project_management economics education electrical_engineering elementary_chinese elementary_commonsense \
            elementary_information_and_technology elementary_mathematics ethnology food_science genetics global_facts high_school_biology high_school_chemistry \
            high_school_geography high_school_mathematics high_school_physics high_school_politics human_sexuality international_law journalism jurisprudence \
            legal_and_moral_basis logical machine_learning management marketing marxist_theory modern_chinese nutrition philosophy professional_accounting \
            professional_law professional_medicine professional_psychology public_relations security_study sociology sports_science traditional_chinese_medicine \
            virology world_history world_religions";
        let subjects: Vec<&str> = cmmlu.split_whitespace().collect();
        assert_eq!(subjects.len(), 67);
        let used: std::collections::BTreeSet<&str> = subjects.iter().map(|s| cmmlu_topic(s).unwrap_or_else(|| panic!("{s}"))).collect();
        assert_eq!(used.len(), 11);
        assert_eq!(cmmlu_topic("nonsense"), None);

        let p = labelling_prompt(&ENGLISH_TOPICS, "  Photosynthesis converts light energy.  ", 20);
        assert!(
            p.contains("following 11 topics")
                && p.contains("- Biology and Medicine")
                && p.contains("Article:\nPhotosynthesis conve\n")
                && p.ends_with("Topic:"),
            "{p}"
        );
        let en = ENGLISH_TOPICS;
        assert_eq!(parse_topic(" Biology and Medicine.", &en), Some("Biology and Medicine"));
        assert_eq!(parse_topic("Topic: chemistry", &en), Some("Chemistry"));
        assert_eq!(parse_topic("I think it is Law and Politics, or Economics and Business", &en), Some("Law and Politics"));
        assert_eq!(parse_topic("no idea", &en), None);
        assert_eq!(parse_topic("生物与医学。", &CHINESE_TOPICS), Some("生物与医学"));
    }
}
