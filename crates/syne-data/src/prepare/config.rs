//! The settings `syne prepare` reads (typed by syne-recipe) and the sources resolved from them.

#[allow(unused_imports)]
use super::*;

// ------------------------------------------------------------------------------------------
// Configuration

pub use syne_recipe::prepare::{clean_path, PrepareSettings, SourceLanguage};
pub use syne_recipe::SourceSpec;

/// What `syne prepare` reads: `[prepare]` and the `[sources.NAME]` tables of a file (a whole
/// recipe works too: the mixture's own keys of a source are part of the same [`SourceSpec`],
/// and the recipe's other tables are not read here).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PrepareConfig {
    /// `[prepare]`.
    pub prepare: PrepareSettings,
    /// `[sources.NAME]`.
    pub sources: BTreeMap<String, SourceSpec>,
}

/// A source after validation: paths resolved, input files listed, filters merged.
#[derive(Debug, Clone, Serialize)]
pub struct ResolvedSource {
    /// The source's name.
    pub name: String,
    /// Which documents it keeps, by detected language.
    pub language: SourceLanguage,
    /// The record fields it reads.
    pub fields: ResolvedFields,
    /// Its input files (directories expanded).
    pub files: Vec<PathBuf>,
    /// Its quality thresholds: the base, `[prepare.filters]`, then its own `filters`.
    pub quality: QualityConfig,
    /// Its language-confidence threshold.
    pub min_lang_confidence: f64,
}

/// Field names read from each record.
#[derive(Debug, Clone, Serialize)]
pub struct ResolvedFields {
    /// The text field.
    pub text: String,
    /// The id field.
    pub id: Option<String>,
    /// The topic-label field.
    pub topic: Option<String>,
    /// The perplexity field.
    pub perplexity: Option<String>,
}

impl PrepareConfig {
    /// Parse a TOML file; errors name the file and the key at fault.
    pub fn load(path: &Path) -> Result<PrepareConfig> {
        let text = std::fs::read_to_string(path).map_err(|e| DataError::io(path, "cannot read config", e))?;
        Self::parse(&text, path)
    }

    /// Parse TOML text (`path` is used for error messages).
    pub fn parse(text: &str, path: &Path) -> Result<PrepareConfig> {
        #[derive(Deserialize)]
        struct Whole {
            prepare: Option<PrepareSettings>,
            #[serde(default)]
            sources: BTreeMap<String, SourceSpec>,
            // A recipe's other sections are typed and checked by syne-recipe, not here.
            #[serde(flatten)]
            _rest: BTreeMap<String, serde::de::IgnoredAny>,
        }
        let whole: Whole = toml::from_str(text).map_err(|e| DataError::Config {
            path: path.to_path_buf(),
            key: e.span().map(|s| syne_recipe::error::key_at(text, s.start)).unwrap_or_else(|| "?".into()),
            detail: e.message().to_string(),
        })?;
        let cfg_err = |key: &str, detail: String| DataError::Config { path: path.to_path_buf(), key: key.into(), detail };
        let prepare = whole.prepare.ok_or_else(|| cfg_err("prepare", "the [prepare] table is missing".into()))?;
        PrepareConfig::new(prepare, whole.sources).map_err(|(key, detail)| cfg_err(&key, detail))
    }

    /// The settings of a typed recipe (already resolved: its paths are absolute).
    pub fn from_recipe(recipe: &syne_recipe::Recipe) -> Result<PrepareConfig> {
        let cfg_err = |key: &str, detail: String| DataError::Config { path: recipe.path.clone(), key: key.into(), detail };
        let prepare = recipe.prepare.clone().ok_or_else(|| cfg_err("prepare", "the [prepare] table is missing".into()))?;
        PrepareConfig::new(prepare, recipe.sources.clone()).map_err(|(key, detail)| cfg_err(&key, detail))
    }

    /// Validate; `Err((key, detail))` names the key.
    fn new(prepare: PrepareSettings, sources: BTreeMap<String, SourceSpec>) -> std::result::Result<PrepareConfig, (String, String)> {
        if sources.is_empty() {
            return Err(("sources".into(), "no [sources.NAME] tables".into()));
        }
        prepare.check()?;
        for (name, src) in &sources {
            src.check(name, true)?;
        }
        Ok(PrepareConfig { prepare, sources })
    }

    /// Resolve relative paths against `base` (the config file's folder), list input files.
    pub fn resolve(&self, base: &Path) -> Result<Vec<ResolvedSource>> {
        let mut out = Vec::new();
        for (name, src) in &self.sources {
            let paths: Vec<PathBuf> = src.paths.iter().map(|p| clean_path(&base.join(p))).collect();
            let files = expand_inputs(&paths)?;
            if files.is_empty() {
                return Err(DataError::Config { path: base.to_path_buf(), key: format!("sources.{name}.paths"), detail: "no corpus files found".into() });
            }
            // The base (Gopher's or none), then `[prepare.filters]`, then the source's own `filters`.
            let quality = src.filters.apply(self.prepare.filters.apply(self.prepare.quality.config()));
            out.push(ResolvedSource {
                name: name.clone(),
                language: src.language.expect("checked by PrepareConfig::new"),
                fields: ResolvedFields {
                    text: src.text_field.clone(),
                    id: src.id_field.clone(),
                    topic: src.topic_field.clone(),
                    perplexity: src.perplexity_field.clone(),
                },
                files,
                quality,
                min_lang_confidence: src.min_lang_confidence.unwrap_or(self.prepare.min_lang_confidence),
            });
        }
        Ok(out)
    }
}
