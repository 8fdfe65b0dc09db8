//! Collective operations for data-parallel training, behind one trait.
//!
//! [`Collective`] is what a data-parallel trainer needs from its processes: who am I
//! ([`Collective::rank`], [`Collective::world_size`]), gather every rank's rows
//! ([`Collective::all_gather`]), sum gradients ([`Collective::all_reduce_sum`]), send a value
//! from one rank to all ([`Collective::broadcast`]), wait for all ([`Collective::barrier`]) and
//! stop all ([`Collective::abort`]).
//!
//! * [`SingleProcess`]: world size 1; every operation is the identity. The default everywhere,
//!   so a one-process run takes exactly the code path of a distributed one.
//! * `Mpi` (feature `mpi`): MPI ranks through rsmpi, launched by `mpiexec -n N` or SLURM's
//!   `srun`. The default build needs no MPI library.
//! * `Nccl` (feature `nccl`): MPI ranks whose all-gathers and all-reductions run through NCCL,
//!   one GPU per rank (cudarc, loaded at run time).
//!
//! With `mpi`, [`testing`] runs a test as MPI ranks (the test binary under `mpiexec`).
//!
//! Buffers are host `f32` / `u64` slices: the trainer moves tensors to and from them, so a
//! backend needs no collective support of its own (burn 0.22's LibTorch and Flex have none).
//! Every call is blocking and must be made by every rank in the same order, as in MPI.
//!
//! ```
//! use hybrid_ir_collective::{Collective, SingleProcess};
//!
//! let one = SingleProcess;
//! assert_eq!((one.rank(), one.world_size()), (0, 1));
//! let mut grads = vec![1.0_f32, 2.0];
//! one.all_reduce_sum(&mut grads).unwrap();
//! assert_eq!(grads, [1.0, 2.0]);
//! assert_eq!(one.all_gather(&[3.0]).unwrap(), ([3.0].to_vec(), vec![0..1]));
//! ```

/// Compiles and runs the README's code blocks as doc tests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;

use std::fmt::Debug;
use std::ops::Range;

#[cfg(feature = "mpi")]
mod mpi_ranks;
#[cfg(feature = "nccl")]
mod nccl_ranks;
mod launch;
#[cfg(feature = "mpi")]
pub mod testing;

#[cfg(feature = "mpi")]
pub use mpi_ranks::Mpi;
#[cfg(feature = "nccl")]
pub use nccl_ranks::Nccl;
pub use launch::{DistributedChoice, LaunchEnv, rank_gpu};

/// Why a collective operation failed.
#[derive(Debug, thiserror::Error)]
pub enum CollectiveError {
    /// Ranks disagree on something that must be equal on all of them.
    #[error("ranks disagree: {0}")]
    Mismatch(String),
    /// The processes were launched as ranks but this build cannot join them.
    #[error("{0}")]
    Unavailable(String),
    /// The communication library reported an error.
    #[error("{library}: {message}")]
    Library {
        /// `mpi` or `nccl`.
        library: &'static str,
        /// What it said.
        message: String,
    },
}

/// Result of a collective operation.
pub type Result<T> = std::result::Result<T, CollectiveError>;

/// The operations a data-parallel trainer needs from the processes it runs on.
///
/// Every rank must call the same operations in the same order (they are blocking collectives).
pub trait Collective: Debug {
    /// This process's rank, `0..world_size()`.
    fn rank(&self) -> usize;
    /// Number of processes.
    fn world_size(&self) -> usize;
    /// What carries the data (`single process`, `MPI (MPICH 4.0)`, ...), for logs and cards.
    fn describe(&self) -> String;
    /// Concatenates every rank's `local` in rank order. Counts may differ between ranks.
    /// Returns the concatenation and the range each rank's values occupy in it.
    fn all_gather(&self, local: &[f32]) -> Result<(Vec<f32>, Vec<Range<usize>>)>;
    /// [`Collective::all_gather`] for `u64` values (row indices, counts, fingerprints).
    fn all_gather_u64(&self, local: &[u64]) -> Result<(Vec<u64>, Vec<Range<usize>>)>;
    /// Replaces `values` on every rank by the element-wise sum over all ranks. The length must be
    /// the same on every rank.
    fn all_reduce_sum(&self, values: &mut [f32]) -> Result<()>;
    /// Makes `bytes` on every rank equal to `bytes` on rank `root` (lengths may differ before).
    fn broadcast(&self, root: usize, bytes: &mut Vec<u8>) -> Result<()>;
    /// Returns once every rank has called it.
    fn barrier(&self) -> Result<()>;
    /// Ends every rank's process with `code` (after an error on one rank, the others would
    /// otherwise wait forever in their next collective).
    fn abort(&self, code: i32) -> !;
    /// Payload bytes this rank has sent through collectives so far (for the benchmarks).
    fn bytes_sent(&self) -> u64;
    /// Whether every operation is the identity, so callers may skip them (and their copies to
    /// host buffers). Only [`SingleProcess`]: an MPI or NCCL world of one still communicates, which
    /// is how a one-rank run checks the communicating path against the plain one.
    fn is_identity(&self) -> bool {
        false
    }
}

/// One process: world size 1, every operation the identity.
#[derive(Debug, Clone, Copy, Default)]
pub struct SingleProcess;

impl Collective for SingleProcess {
    fn rank(&self) -> usize {
        0
    }
    fn world_size(&self) -> usize {
        1
    }
    fn describe(&self) -> String {
        "single process".into()
    }
    fn all_gather(&self, local: &[f32]) -> Result<(Vec<f32>, Vec<Range<usize>>)> {
        Ok((local.to_vec(), vec![0..local.len()]))
    }
    fn all_gather_u64(&self, local: &[u64]) -> Result<(Vec<u64>, Vec<Range<usize>>)> {
        Ok((local.to_vec(), vec![0..local.len()]))
    }
    fn all_reduce_sum(&self, _values: &mut [f32]) -> Result<()> {
        Ok(())
    }
    fn broadcast(&self, root: usize, _bytes: &mut Vec<u8>) -> Result<()> {
        if root != 0 {
            return Err(CollectiveError::Mismatch(format!("broadcast from rank {root} in a world of 1")));
        }
        Ok(())
    }
    fn barrier(&self) -> Result<()> {
        Ok(())
    }
    fn abort(&self, code: i32) -> ! {
        std::process::exit(code)
    }
    fn bytes_sent(&self) -> u64 {
        0
    }
    fn is_identity(&self) -> bool {
        true
    }
}

/// The rows `0..total` split over `world` ranks as evenly as possible, in rank order (the first
/// `total % world` ranks get one more): rank `r`'s contiguous share.
///
/// ```
/// use hybrid_ir_collective::shard_range;
/// assert_eq!((0..3).map(|r| shard_range(10, r, 3)).collect::<Vec<_>>(), [0..4, 4..7, 7..10]);
/// ```
pub fn shard_range(total: usize, rank: usize, world: usize) -> Range<usize> {
    let world = world.max(1);
    let (base, extra) = (total / world, total % world);
    let start = rank * base + rank.min(extra);
    start..start + base + usize::from(rank < extra)
}

/// Ranges of consecutive values for the given per-rank counts.
#[cfg_attr(not(feature = "mpi"), allow(dead_code))]
pub(crate) fn ranges_of(counts: &[usize]) -> Vec<Range<usize>> {
    let mut start = 0;
    counts
        .iter()
        .map(|&c| {
            let r = start..start + c;
            start += c;
            r
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_cover_every_row_once() {
        for total in 0..30 {
            for world in 1..6 {
                let shards: Vec<_> = (0..world).map(|r| shard_range(total, r, world)).collect();
                assert_eq!(shards.first().unwrap().start, 0);
                assert_eq!(shards.last().unwrap().end, total);
                for w in shards.windows(2) {
                    assert_eq!(w[0].end, w[1].start);
                    assert!(w[0].len() >= w[1].len() && w[0].len() - w[1].len() <= 1);
                }
            }
        }
    }

    #[test]
    fn single_process_is_the_identity() {
        let one = SingleProcess;
        let mut bytes = b"abc".to_vec();
        one.broadcast(0, &mut bytes).unwrap();
        assert_eq!(bytes, b"abc");
        assert!(one.broadcast(1, &mut bytes).is_err());
        assert_eq!(one.all_gather_u64(&[5, 6]).unwrap(), (vec![5, 6], vec![0..2]));
        assert_eq!(ranges_of(&[2, 0, 3]), [0..2, 2..2, 2..5]);
    }
}
