//! The device a step runs on.

/// Set the CPU math threads (0 = libtorch's default: all cores) and pick the device: the GPU
/// when one is present, unless `cpu`.
pub fn torch_device(threads: usize, cpu: bool) -> tch::Device {
    if threads > 0 {
        tch::set_num_threads(threads as i32);
    }
    if cpu {
        tch::Device::Cpu
    } else {
        tch::Device::cuda_if_available()
    }
}
