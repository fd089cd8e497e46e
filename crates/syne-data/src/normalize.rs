//! Unicode normalisation and clean-up of raw document text.

use unicode_normalization::UnicodeNormalization;

pub use syne_recipe::prepare::{NormalizeConfig, UnicodeForm};

fn is_invisible(c: char) -> bool {
    matches!(c, '\u{200B}' | '\u{200C}' | '\u{200D}' | '\u{2060}' | '\u{FEFF}' | '\u{00AD}')
}

/// Normalise `text` according to `cfg`. The result is trimmed.
pub fn normalize(text: &str, cfg: &NormalizeConfig) -> String {
    let composed: String = match cfg.form {
        UnicodeForm::None => text.to_owned(),
        UnicodeForm::Nfc => {
            if unicode_normalization::is_nfc_quick(text.chars()) == unicode_normalization::IsNormalized::Yes {
                text.to_owned()
            } else {
                text.nfc().collect()
            }
        }
        UnicodeForm::Nfkc => {
            if unicode_normalization::is_nfkc_quick(text.chars()) == unicode_normalization::IsNormalized::Yes {
                text.to_owned()
            } else {
                text.nfkc().collect()
            }
        }
    };
    let mut out = String::with_capacity(composed.len());
    let mut chars = composed.chars().peekable();
    while let Some(c) = chars.next() {
        if cfg.strip_control {
            if c == '\r' {
                if chars.peek() != Some(&'\n') {
                    out.push('\n');
                }
                continue;
            }
            if (c.is_control() && c != '\n' && c != '\t') || is_invisible(c) {
                continue;
            }
        }
        out.push(c);
    }
    if !cfg.tidy_whitespace {
        return out.trim().to_owned();
    }
    let mut tidy = String::with_capacity(out.len());
    let mut blank_run = 0usize;
    for line in out.split('\n') {
        let line = line.trim_end();
        if line.is_empty() {
            blank_run += 1;
            if blank_run > 1 {
                continue;
            }
        } else {
            blank_run = 0;
        }
        tidy.push_str(line);
        tidy.push('\n');
    }
    tidy.trim().to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nfkc_folds_fullwidth_digits_and_strips_controls() {
        let cfg = NormalizeConfig { form: UnicodeForm::Nfkc, ..Default::default() };
        assert_eq!(normalize("１９９８年\u{0007}\u{200B}新年\r\n讲话  \n\n\n\n完", &cfg), "1998年新年\n讲话\n\n完");
    }

    #[test]
    fn nfc_composes_and_keeps_tabs() {
        let cfg = NormalizeConfig::default();
        assert_eq!(normalize("e\u{0301}\tx\r", &cfg), "\u{00e9}\tx");
    }

    #[test]
    fn none_keeps_text() {
        let cfg = NormalizeConfig { form: UnicodeForm::None, strip_control: false, tidy_whitespace: false };
        assert_eq!(normalize(" a\u{0007}\r\n ", &cfg), "a\u{0007}");
    }
}
