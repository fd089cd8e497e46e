//! Language identification and zh/en/other routing, with a confidence, using `whatlang`.

use serde::{Deserialize, Serialize};

use crate::text::is_cjk;

/// The routing classes the pipeline knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Lang {
    /// Chinese.
    Zh,
    /// English.
    En,
    /// Anything else (or undecided).
    Other,
}

impl Lang {
    /// Short code used in file names and manifests.
    pub fn code(self) -> &'static str {
        match self {
            Lang::Zh => "zh",
            Lang::En => "en",
            Lang::Other => "other",
        }
    }
}

/// A language decision.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct LangGuess {
    /// The language.
    pub lang: Lang,
    /// 0..=1; whatlang's confidence, or the CJK share of letters for Chinese.
    pub confidence: f64,
}

/// How much text (in bytes, from the start) the detector looks at; detection cost then does
/// not grow with document length.
const SAMPLE_BYTES: usize = 2048;

/// Identify the language of `text`.
///
/// Chinese is decided by script: when CJK ideographs are at least half of the letters in the
/// sample, the document is Chinese with confidence = that share (whatlang's trigram confidence
/// is meaningless for a script with one language). Otherwise whatlang decides between English
/// and the rest.
pub fn detect(text: &str) -> LangGuess {
    let mut end = text.len().min(SAMPLE_BYTES);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    let sample = &text[..end];
    let (mut letters, mut han) = (0usize, 0usize);
    for c in sample.chars() {
        if is_cjk(c) {
            han += 1;
            letters += 1;
        } else if c.is_alphabetic() {
            letters += 1;
        }
    }
    if letters == 0 {
        return LangGuess { lang: Lang::Other, confidence: 0.0 };
    }
    let han_share = han as f64 / letters as f64;
    if han_share >= 0.5 {
        // Japanese kana are inside is_cjk; a text with much kana is Japanese, not Chinese.
        let kana = sample.chars().filter(|c| matches!(*c as u32, 0x3040..=0x30FF)).count();
        if kana * 5 > han {
            return LangGuess { lang: Lang::Other, confidence: han_share };
        }
        return LangGuess { lang: Lang::Zh, confidence: han_share };
    }
    match whatlang::detect(sample) {
        Some(info) if info.lang() == whatlang::Lang::Eng => LangGuess { lang: Lang::En, confidence: info.confidence() },
        Some(info) if info.lang() == whatlang::Lang::Cmn => LangGuess { lang: Lang::Zh, confidence: info.confidence() },
        Some(info) => LangGuess { lang: Lang::Other, confidence: info.confidence() },
        None => LangGuess { lang: Lang::Other, confidence: 0.0 },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_chinese_english_other() {
        let zh = detect("中华人民共和国是位于东亚的国家，首都是北京。它的人口超过十四亿。");
        assert_eq!(zh.lang, Lang::Zh);
        assert!(zh.confidence > 0.9);
        let en = detect("The quick brown fox jumps over the lazy dog while the farmer watches from the porch.");
        assert_eq!(en.lang, Lang::En);
        assert!(en.confidence > 0.5);
        assert_eq!(detect("Der schnelle braune Fuchs springt über den faulen Hund und läuft weg.").lang, Lang::Other);
        assert_eq!(detect("12345 !!! ???").lang, Lang::Other);
        assert_eq!(detect("これは日本語の文章です。ひらがなとカタカナがあります。").lang, Lang::Other);
    }

    #[test]
    fn chinese_with_some_english_terms_is_chinese() {
        let g = detect("使用 ls 命令列出目录内容，使用 cd 命令切换目录，使用 grep 搜索文件中的文本。");
        assert_eq!(g.lang, Lang::Zh);
    }
}
