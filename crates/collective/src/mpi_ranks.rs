//! MPI ranks through rsmpi (MPICH, Open MPI or any MPI the `mpi` crate builds against).

use std::cell::Cell;
use std::ops::Range;

use mpi::Count;
use mpi::collective::SystemOperation;
use mpi::datatype::PartitionMut;
use mpi::environment::Universe;
use mpi::topology::SimpleCommunicator;
use mpi::traits::{Communicator, CommunicatorCollectives, Equivalence, Root};

use crate::{Collective, CollectiveError, Result, ranges_of};

/// Largest element count of one MPI call: counts are C `int`s, and a bounded piece also bounds
/// the copy `all_reduce_sum` makes of its input.
const MAX_PIECE: usize = 1 << 26;

/// The processes of `MPI_COMM_WORLD`. Created once per process ([`Mpi::init`]); MPI is finalised
/// when it is dropped.
pub struct Mpi {
    // Field order matters: the communicator is released before the universe finalises MPI.
    world: SimpleCommunicator,
    _universe: Universe,
    library: String,
    sent: Cell<u64>,
}

impl std::fmt::Debug for Mpi {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mpi").field("rank", &self.rank()).field("world_size", &self.world_size()).finish()
    }
}

impl Mpi {
    /// Initialises MPI (threads: funneled, since only the calling thread communicates while the
    /// tensor backend's worker threads compute) and joins `MPI_COMM_WORLD`.
    pub fn init() -> Result<Self> {
        let (universe, _threading) = mpi::initialize_with_threading(mpi::Threading::Funneled).ok_or_else(|| {
            CollectiveError::Library { library: "mpi", message: "MPI was already initialised in this process".into() }
        })?;
        let library = mpi::environment::library_version()
            .map(|v| v.lines().next().unwrap_or("").split_whitespace().collect::<Vec<_>>().join(" "))
            .unwrap_or_else(|_| "unknown library".into());
        Ok(Self { world: universe.world(), _universe: universe, library, sent: Cell::new(0) })
    }

    fn count_sent<T>(&self, items: usize) {
        self.sent.set(self.sent.get() + (items * std::mem::size_of::<T>()) as u64);
    }

    fn gather_counts(&self, local: usize) -> Result<Vec<usize>> {
        let local = Count::try_from(local).map_err(|_| too_large(local))?;
        let mut counts = vec![0 as Count; self.world_size()];
        self.world.all_gather_into(&local, &mut counts[..]);
        self.count_sent::<Count>(1);
        Ok(counts.into_iter().map(|c| c as usize).collect())
    }

    fn gather<T: Equivalence + Copy + Default>(&self, local: &[T]) -> Result<(Vec<T>, Vec<Range<usize>>)> {
        let counts = self.gather_counts(local.len())?;
        let total: usize = counts.iter().sum();
        if total > Count::MAX as usize {
            return Err(too_large(total));
        }
        let ranges = ranges_of(&counts);
        let mut out = vec![T::default(); total];
        let c: Vec<Count> = counts.iter().map(|&c| c as Count).collect();
        let d: Vec<Count> = ranges.iter().map(|r| r.start as Count).collect();
        self.world.all_gather_varcount_into(local, &mut PartitionMut::new(&mut out[..], c, d));
        self.count_sent::<T>(local.len());
        Ok((out, ranges))
    }
}

fn too_large(n: usize) -> CollectiveError {
    CollectiveError::Library { library: "mpi", message: format!("{n} elements do not fit one MPI call (at most {})", Count::MAX) }
}

impl Collective for Mpi {
    fn rank(&self) -> usize {
        self.world.rank() as usize
    }

    fn world_size(&self) -> usize {
        self.world.size() as usize
    }

    fn describe(&self) -> String {
        format!("MPI, {} ranks ({})", self.world_size(), self.library)
    }

    fn all_gather(&self, local: &[f32]) -> Result<(Vec<f32>, Vec<Range<usize>>)> {
        self.gather(local)
    }

    fn all_gather_u64(&self, local: &[u64]) -> Result<(Vec<u64>, Vec<Range<usize>>)> {
        self.gather(local)
    }

    fn all_reduce_sum(&self, values: &mut [f32]) -> Result<()> {
        // Every rank must agree on the length, or MPI reads past a buffer: check it first.
        let counts = self.gather_counts(values.len())?;
        if counts.iter().any(|&c| c != values.len()) {
            return Err(CollectiveError::Mismatch(format!("all-reduce lengths per rank {counts:?}")));
        }
        for piece in values.chunks_mut(MAX_PIECE) {
            let send = piece.to_vec();
            self.world.all_reduce_into(&send[..], piece, SystemOperation::sum());
            self.count_sent::<f32>(piece.len());
        }
        Ok(())
    }

    fn broadcast(&self, root: usize, bytes: &mut Vec<u8>) -> Result<()> {
        if root >= self.world_size() {
            return Err(CollectiveError::Mismatch(format!("broadcast from rank {root} in a world of {}", self.world_size())));
        }
        let process = self.world.process_at_rank(root as i32);
        let mut len = bytes.len() as u64;
        process.broadcast_into(&mut len);
        bytes.resize(len as usize, 0);
        for piece in bytes.chunks_mut(MAX_PIECE) {
            process.broadcast_into(piece);
        }
        if self.rank() == root {
            self.count_sent::<u8>(bytes.len() + 8);
        }
        Ok(())
    }

    fn barrier(&self) -> Result<()> {
        self.world.barrier();
        Ok(())
    }

    fn abort(&self, code: i32) -> ! {
        self.world.abort(code)
    }

    fn bytes_sent(&self) -> u64 {
        self.sent.get()
    }
}
