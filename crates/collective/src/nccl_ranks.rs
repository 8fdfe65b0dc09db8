//! NCCL ranks (feature `nccl`): MPI launches and joins the processes and carries the NCCL unique
//! id (NVIDIA's NCCL + MPI pattern); NCCL carries the all-gathers and all-reductions between
//! the GPUs, one GPU per rank. cudarc loads libcuda and libnccl at run time, so the build needs
//! no CUDA toolkit and runs on machines without a GPU (where [`Nccl::init`] returns an error).
//!
//! The trait's buffers are host slices: each operation copies them to the rank's GPU, runs the
//! NCCL collective on the GPU's default stream (libtorch's) and copies the result back.

use std::ops::Range;
use std::sync::Arc;

use cudarc::driver::{CudaContext, CudaStream};
use cudarc::nccl::{Comm, Id, ReduceOp};

use crate::{Collective, CollectiveError, Mpi, Result, ranges_of};

/// MPI ranks whose reductions run through NCCL on one GPU each.
pub struct Nccl {
    // Field order: the communicator is destroyed before the stream, the context and MPI.
    comm: Comm,
    stream: Arc<CudaStream>,
    mpi: Mpi,
    ordinal: usize,
    /// Payload bytes this rank sent through NCCL.
    sent: std::cell::Cell<u64>,
}

impl std::fmt::Debug for Nccl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Nccl").field("rank", &self.rank()).field("gpu", &self.ordinal).finish()
    }
}

fn nccl_error(what: &str, e: impl std::fmt::Debug) -> CollectiveError {
    CollectiveError::Library { library: "nccl", message: format!("{what}: {e:?}") }
}

/// Whether libcuda and libnccl can be loaded (cudarc panics when it cannot load them).
#[allow(unsafe_code)]
fn libraries_present() -> (bool, bool) {
    // SAFETY: both functions only try to `dlopen` the library by its known names and report
    // whether that succeeded; nothing is called through the handle.
    unsafe { (cudarc::driver::sys::is_culib_present(), cudarc::nccl::sys::is_culib_present()) }
}

impl Nccl {
    /// Initialises MPI, picks GPU `ordinal` (default: [`crate::rank_gpu`]), creates the NCCL unique id on rank 0, broadcasts it over MPI and
    /// joins the NCCL communicator.
    pub fn init(ordinal: Option<usize>) -> Result<Self> {
        let (cuda, nccl) = libraries_present();
        if !cuda || !nccl {
            let missing = if cuda {
                "libnccl (e.g. from the nvidia-nccl-cu13 wheel: a libnccl.so link to its libnccl.so.2 on LD_LIBRARY_PATH)"
            } else {
                "libcuda (an NVIDIA driver)"
            };
            return Err(CollectiveError::Unavailable(format!(
                "--distributed nccl: cannot load {missing}; use --distributed mpi on machines without GPUs"
            )));
        }
        let mpi = Mpi::init()?;
        let ordinal = ordinal.unwrap_or_else(crate::rank_gpu);
        let context = CudaContext::new(ordinal).map_err(|e| nccl_error(&format!("opening GPU {ordinal}"), e))?;
        let stream = context.default_stream();
        let mut id_bytes: Vec<u8> = if mpi.rank() == 0 {
            let id = Id::new().map_err(|e| nccl_error("creating the unique id", e))?;
            id.internal().iter().map(|&c| c as u8).collect()
        } else {
            Vec::new()
        };
        mpi.broadcast(0, &mut id_bytes)?;
        let mut internal = [0 as std::ffi::c_char; 128];
        if id_bytes.len() != internal.len() {
            return Err(CollectiveError::Mismatch(format!("the NCCL unique id has {} bytes, expected 128", id_bytes.len())));
        }
        for (dst, &src) in internal.iter_mut().zip(&id_bytes) {
            *dst = src as std::ffi::c_char;
        }
        let comm = Comm::from_rank(stream.clone(), mpi.rank(), mpi.world_size(), Id::uninit(internal))
            .map_err(|e| nccl_error("joining the communicator", e))?;
        Ok(Self { comm, stream, mpi, ordinal, sent: std::cell::Cell::new(0) })
    }

    fn to_gpu(&self, values: &[f32]) -> Result<cudarc::driver::CudaSlice<f32>> {
        self.stream.clone_htod(values).map_err(|e| nccl_error("copying to the GPU", e))
    }

    fn to_host(&self, values: &cudarc::driver::CudaSlice<f32>) -> Result<Vec<f32>> {
        self.stream.clone_dtoh(values).map_err(|e| nccl_error("copying from the GPU", e))
    }
}

impl Collective for Nccl {
    fn rank(&self) -> usize {
        self.mpi.rank()
    }

    fn world_size(&self) -> usize {
        self.mpi.world_size()
    }

    fn describe(&self) -> String {
        format!("NCCL on GPU {} over {}", self.ordinal, self.mpi.describe())
    }

    fn all_gather(&self, local: &[f32]) -> Result<(Vec<f32>, Vec<Range<usize>>)> {
        // NCCL gathers equal counts: pad every rank's values to the largest count.
        let (counts, _) = self.mpi.all_gather_u64(&[local.len() as u64])?;
        let counts: Vec<usize> = counts.into_iter().map(|c| c as usize).collect();
        let width = counts.iter().copied().max().unwrap_or(0);
        let mut padded = local.to_vec();
        padded.resize(width, 0.0);
        let send = self.to_gpu(&padded)?;
        let mut recv = self.stream.alloc_zeros::<f32>(width * counts.len()).map_err(|e| nccl_error("allocating", e))?;
        self.comm.all_gather(&send, &mut recv).map_err(|e| nccl_error("all-gather", e))?;
        self.sent.set(self.sent.get() + 4 * width as u64);
        let all = self.to_host(&recv)?;
        let values = counts.iter().enumerate().flat_map(|(r, &c)| all[r * width..r * width + c].iter().copied()).collect();
        Ok((values, ranges_of(&counts)))
    }

    fn all_gather_u64(&self, local: &[u64]) -> Result<(Vec<u64>, Vec<Range<usize>>)> {
        self.mpi.all_gather_u64(local)
    }

    fn all_reduce_sum(&self, values: &mut [f32]) -> Result<()> {
        let (counts, _) = self.mpi.all_gather_u64(&[values.len() as u64])?;
        if counts.iter().any(|&c| c as usize != values.len()) {
            return Err(CollectiveError::Mismatch(format!("all-reduce lengths per rank {counts:?}")));
        }
        let mut buffer = self.to_gpu(values)?;
        self.comm.all_reduce_in_place(&mut buffer, &ReduceOp::Sum).map_err(|e| nccl_error("all-reduce", e))?;
        self.sent.set(self.sent.get() + 4 * values.len() as u64);
        values.copy_from_slice(&self.to_host(&buffer)?);
        Ok(())
    }

    fn broadcast(&self, root: usize, bytes: &mut Vec<u8>) -> Result<()> {
        self.mpi.broadcast(root, bytes)
    }

    fn barrier(&self) -> Result<()> {
        self.mpi.barrier()
    }

    fn abort(&self, code: i32) -> ! {
        self.mpi.abort(code)
    }

    fn bytes_sent(&self) -> u64 {
        self.mpi.bytes_sent() + self.sent.get()
    }
}
