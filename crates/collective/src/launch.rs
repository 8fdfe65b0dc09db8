//! How this process was launched: alone, or as one rank of many (`mpiexec`, `srun`), and which
//! [`Collective`] joins the ranks.

use crate::{Collective, CollectiveError, Result, SingleProcess};

/// Rank and world size as the launcher put them in the environment, before any library is
/// initialised (so a build without MPI can still tell that it was started as one of many ranks
/// and refuse, instead of training N independent copies).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LaunchEnv {
    /// This process's rank.
    pub rank: usize,
    /// Number of ranks launched.
    pub world_size: usize,
    /// The variable the world size was read from (`PMI_SIZE`, `OMPI_COMM_WORLD_SIZE`, ...).
    pub source: &'static str,
}

/// (world size variable, rank variable) of each launcher, in the order they are trusted:
/// MPICH's Hydra and Intel MPI (PMI), Open MPI, PMIx, then SLURM's `srun`. For SLURM the step's
/// task count, not the job's `SLURM_NTASKS`: a batch script's own shell has `SLURM_NTASKS=N` too,
/// and a command it runs without `srun` is one process.
const LAUNCHERS: [(&str, &str); 4] = [
    ("PMI_SIZE", "PMI_RANK"),
    ("OMPI_COMM_WORLD_SIZE", "OMPI_COMM_WORLD_RANK"),
    ("PMIX_SIZE", "PMIX_RANK"),
    ("SLURM_STEP_NUM_TASKS", "SLURM_PROCID"),
];

impl LaunchEnv {
    /// Reads the launcher's variables; `None` when none is set (a plain process).
    pub fn detect() -> Option<Self> {
        Self::from_vars(|name| std::env::var(name).ok())
    }

    /// [`LaunchEnv::detect`] over any variable lookup (tests).
    pub fn from_vars(var: impl Fn(&str) -> Option<String>) -> Option<Self> {
        LAUNCHERS.iter().find_map(|&(size, rank)| {
            let world_size = var(size)?.trim().parse().ok()?;
            let rank = var(rank).and_then(|r| r.trim().parse().ok()).unwrap_or(0);
            Some(LaunchEnv { rank, world_size, source: size })
        })
    }
}

/// Local-rank variables of the launchers (a rank's position on its node).
const LOCAL_RANK_VARS: [&str; 4] = ["MPI_LOCALRANKID", "OMPI_COMM_WORLD_LOCAL_RANK", "SLURM_LOCALID", "LOCAL_RANK"];

/// The GPU this rank uses under NCCL, one GPU per rank: 0 when the launcher gave the rank one
/// visible device (`CUDA_VISIBLE_DEVICES=3`, as `srun --gpus-per-task=1` does), else the rank's
/// position on its node (`mpiexec -n 8` on an 8-GPU machine: ranks 0..7 on GPUs 0..7).
pub fn rank_gpu() -> usize {
    rank_gpu_from(|name| std::env::var(name).ok())
}

fn rank_gpu_from(var: impl Fn(&str) -> Option<String>) -> usize {
    if var("CUDA_VISIBLE_DEVICES").is_some_and(|v| !v.trim().is_empty() && !v.contains(',')) {
        return 0;
    }
    LOCAL_RANK_VARS
        .iter()
        .find_map(|v| var(v)?.trim().parse().ok())
        .or_else(|| LaunchEnv::from_vars(&var).map(|e| e.rank))
        .unwrap_or(0)
}

/// `--distributed`: how the ranks of a run are joined.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DistributedChoice {
    /// MPI when the process was launched as one of several ranks, else one process.
    #[default]
    Auto,
    /// One process; refused when the launcher started several.
    Off,
    /// MPI ranks (feature `mpi`), also for a world of one.
    Mpi,
    /// MPI ranks whose reductions run through NCCL on one GPU each (feature `nccl`).
    Nccl,
}

impl DistributedChoice {
    /// Parses `auto`, `off`, `mpi` or `nccl`.
    pub fn parse(s: &str) -> std::result::Result<Self, String> {
        match s {
            "auto" => Ok(Self::Auto),
            "off" => Ok(Self::Off),
            "mpi" => Ok(Self::Mpi),
            "nccl" => Ok(Self::Nccl),
            other => Err(format!("unknown distributed mode {other:?}: expected auto, off, mpi or nccl")),
        }
    }

    /// Joins the ranks as chosen. Call once per process, before any other collective use.
    pub fn connect(self) -> Result<Box<dyn Collective>> {
        self.connect_with(LaunchEnv::detect())
    }

    /// [`DistributedChoice::connect`] with the launch environment given.
    pub fn connect_with(self, env: Option<LaunchEnv>) -> Result<Box<dyn Collective>> {
        let many = env.as_ref().filter(|e| e.world_size > 1);
        match (self, many) {
            (Self::Off, Some(e)) => Err(CollectiveError::Unavailable(format!(
                "--distributed off, but this process was launched as rank {} of {} ({}={}); run it without the launcher \
                 or with --distributed auto",
                e.rank, e.world_size, e.source, e.world_size
            ))),
            (Self::Off, None) | (Self::Auto, None) => Ok(Box::new(SingleProcess)),
            (Self::Auto, Some(e)) | (Self::Mpi, Some(e)) => mpi_world(Some(e)),
            (Self::Mpi, None) => mpi_world(None),
            (Self::Nccl, e) => nccl_world(e),
        }
    }
}

#[cfg(feature = "nccl")]
fn nccl_world(_env: Option<&LaunchEnv>) -> Result<Box<dyn Collective>> {
    Ok(Box::new(crate::Nccl::init(None)?))
}

#[cfg(not(feature = "nccl"))]
fn nccl_world(_env: Option<&LaunchEnv>) -> Result<Box<dyn Collective>> {
    Err(CollectiveError::Unavailable(
        "--distributed nccl: this binary was built without NCCL support: rebuild it with `--features nccl` (MPI is \
         needed too: apt-get install mpich libmpich-dev libclang-dev)"
            .into(),
    ))
}

#[cfg(feature = "mpi")]
fn mpi_world(_env: Option<&LaunchEnv>) -> Result<Box<dyn Collective>> {
    Ok(Box::new(crate::Mpi::init()?))
}

#[cfg(not(feature = "mpi"))]
fn mpi_world(env: Option<&LaunchEnv>) -> Result<Box<dyn Collective>> {
    let launched = env.map_or(String::new(), |e| format!("this process was launched as rank {} of {} ({}), but ", e.rank, e.world_size, e.source));
    Err(CollectiveError::Unavailable(format!(
        "{launched}this binary was built without MPI support: rebuild it with `--features mpi` (Debian: apt-get install \
         mpich libmpich-dev libclang-dev)"
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Option<LaunchEnv> {
        let pairs: Vec<(String, String)> = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        LaunchEnv::from_vars(|name| pairs.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone()))
    }

    #[test]
    fn each_rank_gets_its_own_gpu() {
        let gpu = |pairs: &[(&str, &str)]| {
            let pairs: Vec<(String, String)> = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
            rank_gpu_from(|name| pairs.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone()))
        };
        assert_eq!(gpu(&[]), 0);
        assert_eq!(gpu(&[("PMI_SIZE", "8"), ("PMI_RANK", "5"), ("MPI_LOCALRANKID", "1")]), 1);
        assert_eq!(gpu(&[("PMI_SIZE", "8"), ("PMI_RANK", "5")]), 5);
        assert_eq!(gpu(&[("SLURM_LOCALID", "2"), ("CUDA_VISIBLE_DEVICES", "6")]), 0);
        assert_eq!(gpu(&[("SLURM_LOCALID", "2"), ("CUDA_VISIBLE_DEVICES", "0,1,2,3")]), 2);
    }

    #[test]
    fn launchers_are_read_in_order() {
        assert_eq!(env(&[]), None);
        assert_eq!(env(&[("PMI_SIZE", "4"), ("PMI_RANK", "2")]), Some(LaunchEnv { rank: 2, world_size: 4, source: "PMI_SIZE" }));
        let slurm = env(&[("SLURM_STEP_NUM_TASKS", "8"), ("SLURM_PROCID", "7")]).unwrap();
        assert_eq!((slurm.rank, slurm.world_size, slurm.source), (7, 8, "SLURM_STEP_NUM_TASKS"));
        // A batch script's shell (no `srun`): the job's task count alone is not a launch.
        assert_eq!(env(&[("SLURM_NTASKS", "8"), ("SLURM_PROCID", "0")]), None);
        // Open MPI inside a SLURM allocation: the launcher's own variables win.
        let both = env(&[("SLURM_STEP_NUM_TASKS", "8"), ("OMPI_COMM_WORLD_SIZE", "2"), ("OMPI_COMM_WORLD_RANK", "1")]).unwrap();
        assert_eq!((both.rank, both.world_size), (1, 2));
    }

    #[test]
    fn off_refuses_a_multi_rank_launch_and_auto_alone_is_one_process() {
        let two = env(&[("PMI_SIZE", "2"), ("PMI_RANK", "1")]);
        let err = DistributedChoice::Off.connect_with(two).unwrap_err().to_string();
        assert!(err.contains("rank 1 of 2") && err.contains("PMI_SIZE=2"), "{err}");
        let one = DistributedChoice::Auto.connect_with(env(&[("PMI_SIZE", "1")])).unwrap();
        assert_eq!(one.world_size(), 1);
        assert_eq!(DistributedChoice::parse("nccl"), Ok(DistributedChoice::Nccl));
        assert!(DistributedChoice::parse("tcp").is_err());
    }

    #[cfg(not(feature = "mpi"))]
    #[test]
    fn a_build_without_mpi_refuses_ranks_and_says_how_to_rebuild() {
        let err = DistributedChoice::Auto.connect_with(env(&[("PMI_SIZE", "2"), ("PMI_RANK", "0")])).unwrap_err().to_string();
        assert!(err.contains("rank 0 of 2") && err.contains("--features mpi"), "{err}");
    }
}
