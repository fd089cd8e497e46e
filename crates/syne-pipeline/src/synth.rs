//! Step 0 of a run, and `syne synth`: synthetic QA from a `[synth]` section, with the installed
//! benchmarks' test items for decontamination and the backend (servers, or the local model in
//! this process).

use std::sync::atomic::Ordering::Relaxed;

use syne_data::tokenizer::TextTokenizer;
use syne_model::llama::Llama;
use syne_recipe::SynthSettings;
use syne_synth::client::{Counters, Generator};
use syne_synth::run::Summary;

use crate::device::torch_device;
use crate::error::{run_err, Result};
use crate::generator::LocalGenerator;
use crate::observer::{RunObserver, Unit};

/// The test items of the benchmarks `[synth.decontamination]` names (0-shot prompts with their
/// answers): generated text must not overlap them.
pub fn decontamination_items(cfg: &SynthSettings) -> Result<Vec<String>> {
    let mut items = Vec::new();
    if let Some(dir) = &cfg.decontamination.data_dir {
        let opts = syne_eval::task::LoadOptions { limit: None, strict: false };
        for name in &cfg.decontamination.tasks {
            match syne_eval::load::load_task(dir, dir, name, 0, opts)? {
                syne_eval::task::Task::Mc(t) => items.extend(t.items.iter().map(|i| format!("{} {}", i.context, i.choices.join(" ")))),
                syne_eval::task::Task::Gen(t) => items.extend(t.items.iter().map(|i| format!("{} {} {}", i.prompt, i.gold, i.reference))),
            }
        }
    }
    Ok(items)
}

/// Run the synthesis `cfg` (`source` names its file in errors); resumable through its journal.
pub fn synthesise(cfg: &SynthSettings, source: &std::path::Path, observer: &mut dyn RunObserver) -> Result<Summary> {
    if cfg.decontamination.data_dir.is_none() {
        observer.say("warning: no [synth.decontamination] data_dir: generated items are not checked against benchmarks");
    }
    let items = decontamination_items(cfg)?;
    let local = match &cfg.backend.local_model {
        Some(m) => {
            // One model in this process: `concurrency` requests share each generation batch.
            let tok = TextTokenizer::load(m)?;
            if cfg.backend.chat && tok.chat_template().is_none() {
                return Err(run_err(source, format!("[synth.backend] chat = true but {} has no chat template", m.display())));
            }
            Some(LocalGenerator::new(Llama::load(m, torch_device(0, false))?, tok, cfg.backend.chat))
        }
        None => None,
    };
    let bar = observer.progress("synthesis", Some(cfg.max_requests as u64), Unit::Requests);
    let progress = |c: &Counters, resumed: u64| {
        let (done, failed) = (c.done.load(Relaxed), c.failed.load(Relaxed));
        bar.set_position(resumed + done + failed);
        bar.set_message(format!("done {done}, failed {failed}, retried {}, {} tokens", c.retried.load(Relaxed), c.tokens.load(Relaxed)));
    };
    let summary = syne_synth::run::run(cfg, &items, &progress, local.as_ref().map(|g| g as &dyn Generator))?;
    bar.finish();
    Ok(summary)
}
