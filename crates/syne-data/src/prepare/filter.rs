//! Phase 1 (filter: normalise, quality rules, language, hashes) and phase 2 (dedup).

#[allow(unused_imports)]
use super::*;

/// What happened to one record in phase 1.
pub(super) enum Outcome {
    Bad(BadRecordKind, String),
    Dropped(&'static str),
    WrongLanguage,
    Kept(Box<FilteredDoc>, u128, Vec<u64>),
}

pub(super) fn filter_unit(ctx: &Ctx, u: &Unit, hasher: Option<&MinHasher>, bar: &ProgressBar) -> Result<FilterStats> {
    let src = &ctx.sources[u.source];
    let fields =
        FieldSpec { text: src.fields.text.clone(), id: src.fields.id.clone(), topic: src.fields.topic.clone(), perplexity: src.fields.perplexity.clone() };
    let mut counts = Counts::default();
    let mut errors = Vec::new();
    let input_bytes = std::fs::metadata(&u.file).map(|m| m.len()).unwrap_or(0);
    let bar_start = bar.position();

    let mut writer = JsonlWriter::create_with_level(&ctx.filtered_path(u), 1)?;
    let keys_path = ctx.keys_path(u);
    let keys_tmp = crate::io::partial_path(&keys_path);
    let mut keys = BufWriter::new(File::create(&keys_tmp).map_err(|e| DataError::io(&keys_tmp, "cannot create", e))?);
    let mut kept = 0u64;

    let mut note_error = |counts: &mut Counts, msg: String| -> Result<()> {
        if ctx.opts.strict {
            return Err(DataError::Aborted(format!("strict mode: {msg}")));
        }
        if errors.len() < MAX_EXAMPLES {
            tracing::warn!("{msg}");
            errors.push(msg);
        }
        let _ = counts;
        Ok(())
    };

    let mut reader = match CorpusReader::open(&u.file, &fields) {
        Ok(r) => Some(r),
        Err(e) => {
            counts.damaged_files += 1;
            note_error(&mut counts, e.to_string())?;
            None
        }
    };
    let counter = reader.as_ref().map(|r| r.raw_bytes_counter());
    while let Some(r) = reader.as_mut() {
        // Gather a batch (bounded in documents and bytes).
        let mut batch: Vec<Result<crate::io::Document>> = Vec::with_capacity(ctx.cfg.batch_docs);
        let mut bytes = 0usize;
        let mut fatal = None;
        while batch.len() < ctx.cfg.batch_docs && bytes < ctx.cfg.batch_bytes {
            match r.next() {
                None => break,
                Some(Err(e @ (DataError::Corrupt { .. } | DataError::Io { .. }))) => {
                    fatal = Some(e);
                    break;
                }
                Some(item) => {
                    if let Ok(d) = &item {
                        bytes += d.text.len();
                    }
                    batch.push(item);
                }
            }
        }
        let end_of_file = batch.is_empty() || fatal.is_some();
        let outcomes: Vec<Outcome> = batch
            .into_par_iter()
            .map(|item| match item {
                Err(DataError::BadRecord { pos, kind, detail }) => Outcome::Bad(kind, format!("{pos}: {}: {detail}", kind.name())),
                Err(other) => Outcome::Bad(BadRecordKind::MalformedJson, other.to_string()),
                Ok(doc) => process_doc(doc, src, ctx.cfg, hasher),
            })
            .collect();
        for o in outcomes {
            counts.docs_in += 1;
            match o {
                Outcome::Bad(kind, msg) => {
                    *counts.bad_records.entry(kind).or_default() += 1;
                    note_error(&mut counts, msg)?;
                }
                Outcome::Dropped(rule) => *counts.filtered.entry(rule.to_string()).or_default() += 1,
                Outcome::WrongLanguage => counts.language_mismatch += 1,
                Outcome::Kept(doc, hash, band_keys) => {
                    counts.text_bytes_in += doc.text.len() as u64;
                    writer.write(&*doc)?;
                    let mut rec = Vec::with_capacity(16 + 8 * band_keys.len());
                    rec.extend_from_slice(&hash.to_le_bytes());
                    band_keys.iter().for_each(|k| rec.extend_from_slice(&k.to_le_bytes()));
                    keys.write_all(&rec).map_err(|e| DataError::io(&keys_tmp, "cannot write", e))?;
                    kept += 1;
                }
            }
        }
        if let Some(c) = &counter {
            bar.set_position(bar_start + c.load(Ordering::Relaxed));
        }
        if let Some(e) = fatal {
            counts.damaged_files += 1;
            note_error(&mut counts, e.to_string())?;
        }
        if end_of_file {
            break;
        }
    }
    // Hash the input as consumed (line formats hash while reading; Parquet is hashed here).
    let input_sha256 = match reader.as_ref().and_then(CorpusReader::content_sha256) {
        Some(h) => h,
        None => sha256_file(&u.file).unwrap_or_else(|_| "unreadable".into()),
    };
    bar.set_position(bar_start + input_bytes);
    let f = keys.into_inner().map_err(|e| DataError::io(&keys_tmp, "cannot flush", e.into_error()))?;
    f.sync_all().map_err(|e| DataError::io(&keys_tmp, "cannot sync", e))?;
    std::fs::rename(&keys_tmp, &keys_path).map_err(|e| DataError::io(&keys_path, "cannot rename into place", e))?;
    writer.finish()?;
    let stats = FilterStats { source: ctx.sources[u.source].name.clone(), input: u.file.clone(), input_sha256, input_bytes, kept, counts, errors };
    // Written last: the unit is complete once this file exists.
    write_json(&ctx.filter_stats_path(u), &stats)?;
    Ok(stats)
}

pub(super) fn process_doc(doc: crate::io::Document, src: &ResolvedSource, cfg: &PrepareSettings, hasher: Option<&MinHasher>) -> Outcome {
    let text = normalize(&doc.text, &cfg.normalize);
    if text.is_empty() {
        return Outcome::Dropped("empty_after_normalize");
    }
    if let Err(rule) = check(&text, &src.quality) {
        return Outcome::Dropped(rule);
    }
    let guess = detect(&text);
    let wanted = match src.language {
        SourceLanguage::Zh => Some(Lang::Zh),
        SourceLanguage::En => Some(Lang::En),
        SourceLanguage::Auto | SourceLanguage::Any => None,
    };
    if let Some(w) = wanted.filter(|_| cfg.language_filter) {
        if guess.lang != w && guess.confidence >= src.min_lang_confidence {
            return Outcome::WrongLanguage;
        }
    }
    let lang = match src.language {
        SourceLanguage::Zh => Lang::Zh,
        SourceLanguage::En => Lang::En,
        SourceLanguage::Auto | SourceLanguage::Any => guess.lang,
    };
    let hash = content_hash(&text);
    let band_keys = hasher.map(|h| h.band_keys(&h.signature(&text))).unwrap_or_default();
    let pos = doc.pos.to_string();
    Outcome::Kept(
        Box::new(FilteredDoc { text, id: doc.id, pos, lang, lang_conf: guess.confidence, topic: doc.topic, perplexity: doc.perplexity }),
        hash,
        band_keys,
    )
}

pub(super) fn dedup_all(ctx: &Ctx, stats: &[FilterStats], bands: usize) -> Result<Vec<u8>> {
    let n: u64 = stats.iter().map(|s| s.kept).sum();
    let n = usize::try_from(n).map_err(|_| DataError::Aborted("too many documents".into()))?;
    let mut hashes = Vec::with_capacity(n);
    let mut band_keys = Vec::with_capacity(n * bands);
    let rec = 16 + 8 * bands;
    for (u, s) in ctx.units.iter().zip(stats) {
        let path = ctx.keys_path(u);
        let mut f = BufReader::new(File::open(&path).map_err(|e| DataError::io(&path, "cannot open", e))?);
        let mut buf = vec![0u8; rec];
        for _ in 0..s.kept {
            f.read_exact(&mut buf).map_err(|e| DataError::io(&path, "truncated dedup keys", e))?;
            hashes.push(u128::from_le_bytes(buf[..16].try_into().expect("16")));
            band_keys.extend(buf[16..].chunks_exact(8).map(|c| u64::from_le_bytes(c.try_into().expect("8"))));
        }
    }
    let decisions = decide(n, &hashes, ctx.cfg.dedup.exact, &band_keys, if ctx.cfg.dedup.near { bands } else { 0 });
    Ok(decisions
        .into_iter()
        .map(|d| match d {
            Decision::Keep => 0,
            Decision::ExactDuplicateOf(_) => 1,
            Decision::NearDuplicateOf(_) => 2,
        })
        .collect())
}
