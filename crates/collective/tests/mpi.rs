//! The MPI collectives on two real ranks (`mpiexec -n 2` of this test binary).
#![cfg(feature = "mpi")]

use hybrid_ir_collective::testing::{assert_ranks_succeeded, spawn_ranks};
use hybrid_ir_collective::DistributedChoice;

#[test]
fn two_ranks_gather_reduce_and_broadcast() {
    if let Some(out) = spawn_ranks("two_ranks_gather_reduce_and_broadcast", 2) {
        assert_ranks_succeeded(&out);
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert_eq!(stdout.matches("rank body done").count(), 2, "{stdout}");
        return;
    }
    let world = DistributedChoice::Auto.connect().unwrap();
    assert_eq!(world.world_size(), 2);
    let rank = world.rank();
    assert!(world.describe().starts_with("MPI, 2 ranks"), "{}", world.describe());

    // Uneven counts: rank 0 sends 3 values, rank 1 sends 1.
    let local: Vec<f32> = if rank == 0 { vec![1.0, 2.0, 3.0] } else { vec![10.0] };
    let (all, ranges) = world.all_gather(&local).unwrap();
    assert_eq!(all, [1.0, 2.0, 3.0, 10.0]);
    assert_eq!(ranges, [0..3, 3..4]);
    let (ids, _) = world.all_gather_u64(&[rank as u64 + 7]).unwrap();
    assert_eq!(ids, [7, 8]);

    let mut sums = vec![rank as f32 + 1.0; 5];
    world.all_reduce_sum(&mut sums).unwrap();
    assert_eq!(sums, [3.0; 5]);

    let mut bytes = if rank == 1 { b"from one".to_vec() } else { Vec::new() };
    world.broadcast(1, &mut bytes).unwrap();
    assert_eq!(bytes, b"from one");
    assert!(world.broadcast(2, &mut bytes).is_err());
    world.barrier().unwrap();
    assert!(world.bytes_sent() > 0);
    println!("rank body done");
}

#[test]
fn ranks_that_disagree_on_a_reduction_length_get_an_error_not_a_hang() {
    if let Some(out) = spawn_ranks("ranks_that_disagree_on_a_reduction_length_get_an_error_not_a_hang", 2) {
        assert_ranks_succeeded(&out);
        return;
    }
    let world = DistributedChoice::Mpi.connect().unwrap();
    let mut values = vec![0.0; 2 + world.rank()];
    let err = world.all_reduce_sum(&mut values).unwrap_err().to_string();
    assert!(err.contains("[2, 3]"), "{err}");
}

/// Where this runs there may be no GPU (CI has none): then `--distributed nccl` is an error that
/// names the missing library, not a panic; with a GPU it joins a world of one.
#[cfg(feature = "nccl")]
#[test]
fn nccl_is_a_clear_error_without_a_gpu_and_a_world_of_one_with_one() {
    match DistributedChoice::Nccl.connect() {
        Ok(world) => {
            assert_eq!(world.world_size(), 1);
            assert!(world.describe().starts_with("NCCL on GPU"), "{}", world.describe());
            let mut values = vec![1.0_f32, 2.0];
            world.all_reduce_sum(&mut values).unwrap();
            assert_eq!(values, [1.0, 2.0]);
            let (all, ranges) = world.all_gather(&[5.0]).unwrap();
            assert_eq!((all, ranges), (vec![5.0], vec![0..1]));
        }
        Err(e) => {
            let e = e.to_string();
            assert!(e.contains("cannot load libcuda") || e.contains("cannot load libnccl"), "{e}");
        }
    }
}
