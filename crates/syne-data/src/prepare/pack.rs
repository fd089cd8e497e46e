//! Phase 3: tokenize the kept documents and pack them into shards.

#[allow(unused_imports)]
use super::*;

pub(super) struct OpenShard {
    pub(super) writer: ShardWriter,
    pub(super) meta: JsonlWriter,
    pub(super) name: String,
    pub(super) lang: String,
}

pub(super) fn pack_unit(ctx: &Ctx, u: &Unit, decisions: &[u8], tok: &TextTokenizer, width: TokenWidth, bar: &ProgressBar) -> Result<PackStats> {
    let src = &ctx.sources[u.source];
    let path = ctx.filtered_path(u);
    let file = File::open(&path).map_err(|e| DataError::io(&path, "cannot open", e))?;
    let dec = zstd::stream::read::Decoder::new(file).map_err(|e| DataError::io(&path, "cannot start zstd", e))?;
    let mut lines = BufReader::with_capacity(1 << 20, dec).lines();
    let mut counts = Counts::default();
    let mut shards: Vec<ShardEntry> = Vec::new();
    let mut open: BTreeMap<String, OpenShard> = BTreeMap::new();
    let mut parts: BTreeMap<String, usize> = BTreeMap::new();
    let add_bos = tok.adds_bos(ctx.cfg.bos);
    let add_eos = ctx.cfg.eos;
    let shard_dir = ctx.out.join("shards");

    let mut i = 0usize;
    while i < decisions.len() {
        let mut batch: Vec<FilteredDoc> = Vec::with_capacity(ctx.cfg.batch_docs);
        let mut bytes = 0usize;
        while i < decisions.len() && batch.len() < ctx.cfg.batch_docs && bytes < ctx.cfg.batch_bytes {
            let line = lines
                .next()
                .ok_or_else(|| DataError::Shard { path: path.clone(), detail: format!("ends after {i} documents, expected {}", decisions.len()) })?
                .map_err(|e| DataError::io(&path, "cannot read", e))?;
            match decisions[i] {
                0 => {
                    let d: FilteredDoc =
                        serde_json::from_str(&line).map_err(|e| DataError::Shard { path: path.clone(), detail: format!("line {}: {e}", i + 1) })?;
                    bytes += d.text.len();
                    batch.push(d);
                }
                1 => counts.exact_duplicates += 1,
                _ => counts.near_duplicates += 1,
            }
            i += 1;
        }
        let ids = tok.encode_batch(&batch.iter().map(|d| d.text.as_str()).collect::<Vec<_>>())?;
        for (doc, ids) in batch.into_iter().zip(ids) {
            if ids.len() < ctx.cfg.min_doc_tokens {
                counts.too_few_tokens += 1;
                continue;
            }
            let mut toks = Vec::with_capacity(ids.len() + 2);
            if add_bos {
                toks.extend(tok.bos_id());
            }
            toks.extend_from_slice(&ids);
            if add_eos {
                toks.extend(tok.eos_id());
            }
            let lang = doc.lang.code().to_string();
            let group = match src.language {
                SourceLanguage::Any => "any".to_string(),
                _ => lang.clone(),
            };
            if !open.contains_key(&group) {
                let part = parts.entry(group.clone()).or_default();
                let name = format!("{}.{group}.{}.{part:04}", src.name, &u.name[src.name.len() + 1..]);
                *part += 1;
                let writer = ShardWriter::create(&shard_dir.join(&name), width)?;
                let meta = JsonlWriter::create(&shard_dir.join(format!("{name}.docs.jsonl")))?;
                open.insert(group.clone(), OpenShard { writer, meta, name, lang: group.clone() });
            }
            let shard = open.get_mut(&group).expect("inserted above");
            shard.meta.write(&DocMeta {
                id: doc.id,
                source: src.name.clone(),
                lang: doc.lang,
                lang_conf: doc.lang_conf,
                pos: doc.pos,
                content_hash: format!("{:032x}", content_hash(&doc.text)),
                tokens: toks.len() as u64,
                topic: doc.topic,
                perplexity: doc.perplexity,
            })?;
            shard.writer.push(&toks)?;
            counts.docs_out += 1;
            counts.tokens_out += toks.len() as u64;
            let lc = counts.languages.entry(lang).or_default();
            lc.docs += 1;
            lc.tokens += toks.len() as u64;
            if shard.writer.tokens() >= ctx.cfg.shard_max_tokens {
                let s = open.remove(&group).expect("present");
                shards.push(close_shard(s, &src.name)?);
            }
        }
        bar.tick();
    }
    for (_, s) in std::mem::take(&mut open) {
        shards.push(close_shard(s, &src.name)?);
    }
    shards.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(PackStats { counts, shards })
}

pub(super) fn close_shard(s: OpenShard, source: &str) -> Result<ShardEntry> {
    let docs = s.writer.docs() as u64;
    let tokens = s.writer.tokens();
    s.meta.finish()?;
    let (bin, _) = s.writer.finish()?;
    Ok(ShardEntry { name: s.name, source: source.to_string(), lang: s.lang, docs, tokens, bin_sha256: sha256_file(&bin)? })
}
