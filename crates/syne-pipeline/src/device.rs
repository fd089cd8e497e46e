//! The device a step runs on.

/// Set the CPU math threads (0 = libtorch's default: all cores) and pick the device: the GPU
/// when one is present, unless `cpu`.
pub fn torch_device(threads: usize, cpu: bool) -> tch::Device {
    install_cpu_cache();
    if threads > 0 {
        tch::set_num_threads(threads as i32);
    }
    if cpu {
        tch::Device::Cpu
    } else {
        tch::Device::cuda_if_available()
    }
}

/// Keep freed CPU tensor blocks for reuse ([`syne_model::native::install_cpu_caching_allocator`]):
/// up to `SYNE_CPU_CACHE_MIB` MiB (default 4,096; 0 turns it off). Training steps and scoring
/// batches allocate the same sizes again and again; reusing them saves the page faults of
/// fresh mappings (4-5% of a CPU training step).
fn install_cpu_cache() {
    let mib = std::env::var("SYNE_CPU_CACHE_MIB").ok().and_then(|v| v.trim().parse::<usize>().ok());
    let bytes = mib.map_or(syne_model::native::DEFAULT_CPU_CACHE_BYTES, |m| m << 20);
    if bytes > 0 {
        syne_model::native::install_cpu_caching_allocator(bytes);
    }
}
