//! Run-time device choice: `cpu`/`flex` (always), `tch-cpu` and `tch-cuda:N` (feature `tch`).

use burn::tensor::Device;

use crate::error::{ModelError, Result};

/// A compute device named on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceSpec {
    /// burn's Flex CPU backend (`cpu` or `flex`).
    Flex,
    /// LibTorch on the CPU (`tch-cpu`; feature `tch`).
    TchCpu,
    /// LibTorch on CUDA GPU `N` (`tch-cuda:N`; feature `tch`).
    TchCuda(usize),
}

impl std::str::FromStr for DeviceSpec {
    type Err = ModelError;
    fn from_str(spec: &str) -> Result<Self> {
        let err = |message: &str| ModelError::Device { spec: spec.to_string(), message: message.to_string() };
        let parsed = match spec {
            "cpu" | "flex" => Self::Flex,
            "tch-cpu" => Self::TchCpu,
            "tch-cuda" => Self::TchCuda(0),
            _ => match spec.strip_prefix("tch-cuda:") {
                Some(n) => Self::TchCuda(n.parse().map_err(|_| err("expected tch-cuda:<index>"))?),
                None => return Err(err("expected cpu | flex | tch-cpu | tch-cuda:N")),
            },
        };
        if parsed != Self::Flex && !cfg!(feature = "tch") {
            return Err(err("this build has no LibTorch backend; rebuild with `--features tch`"));
        }
        Ok(parsed)
    }
}

impl std::fmt::Display for DeviceSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Flex => write!(f, "cpu"),
            Self::TchCpu => write!(f, "tch-cpu"),
            Self::TchCuda(n) => write!(f, "tch-cuda:{n}"),
        }
    }
}

impl DeviceSpec {
    /// Every device compiled into this build that can run here without a GPU
    /// (`cpu`, plus `tch-cpu` with feature `tch`). Tests iterate over these.
    pub fn compiled_cpu_devices() -> Vec<Self> {
        let mut devices = vec![Self::Flex];
        if cfg!(feature = "tch") {
            devices.push(Self::TchCpu);
        }
        devices
    }

    /// The plain (inference) burn device. A LibTorch spec built by hand in a build without the
    /// `tch` feature (the parser refuses it) is an error, not a panic. The first call also makes
    /// the allocator keep freed memory ([`crate::memory::retain_freed_memory`]).
    pub fn try_device(self) -> Result<Device> {
        crate::memory::retain_freed_memory();
        match self {
            Self::Flex => Ok(Device::flex()),
            #[cfg(feature = "tch")]
            Self::TchCpu => Ok(tch::cpu()),
            #[cfg(feature = "tch")]
            Self::TchCuda(n) => Ok(tch::cuda(n)),
            #[cfg(not(feature = "tch"))]
            Self::TchCpu | Self::TchCuda(_) => Err(ModelError::Device {
                spec: self.to_string(),
                message: "this build has no LibTorch backend; rebuild with `--features tch`".into(),
            }),
        }
    }

    /// The plain (inference) burn device; [`DeviceSpec::Flex`] for a LibTorch spec in a build
    /// without `tch` is never returned silently: such a spec cannot be parsed, and
    /// [`DeviceSpec::try_device`] reports one built by hand.
    ///
    /// # Panics
    /// For a LibTorch spec in a build without the `tch` feature; use [`DeviceSpec::try_device`]
    /// where the spec comes from user code.
    pub fn device(self) -> Device {
        self.try_device().unwrap_or_else(|e| panic!("{e}"))
    }

    /// The autodiff (training) device: gradients tracked and dropout active.
    pub fn autodiff_device(self) -> Device {
        self.device().autodiff()
    }
}

#[cfg(feature = "tch")]
#[allow(deprecated)] // burn 0.22 marks burn-tch deprecated; it is still the only LibTorch route here.
mod tch {
    use burn::tensor::Device;

    pub(super) fn cpu() -> Device {
        Device::libtorch()
    }

    pub(super) fn cuda(index: usize) -> Device {
        Device::libtorch_cuda(index)
    }
}

/// Runs a test body once per compiled-in CPU device (`cpu`, and `tch-cpu` with feature `tch`).
///
/// ```ignore
/// test_device!(fn padding_does_not_change_embeddings(device) { /* uses `device: Device` */ });
/// ```
#[macro_export]
macro_rules! test_device {
    ($(#[$meta:meta])* fn $name:ident($device:ident) $body:block) => {
        $(#[$meta])*
        #[test]
        fn $name() {
            for spec in $crate::DeviceSpec::compiled_cpu_devices() {
                eprintln!("[{}] on {spec}", stringify!($name));
                let $device: ::burn::tensor::Device = spec.device();
                $body
            }
        }
    };
}
