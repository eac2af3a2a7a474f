//! Redemptions per second on `MemoryStore`, beside a baseline in the same run: the
//! `ReferenceStore` model, one `Mutex` over all state, applying the same rules and doing the
//! same work (use, credit hold, session, ledger entry, outbox event).
//!
//! Run: `cargo bench --bench redeem --features test-util`. It also prints the heap bytes per
//! stored link and per session, counted by a global allocator. Each sample spawns its threads
//! once (tens of microseconds) and then runs thousands of redemptions in them.
//!
//! The machine's own scaling is the floor for the store's: `private_stores` runs the spread
//! case with every thread on a store of its own, so that the threads share nothing of the
//! store's (no lock, no cache line), only the machine (cores, allocator, kernel).
//!
//! `REDEEM_PROFILE=<threads>[,private][,accounts=<n>]` skips criterion and runs only the spread case, 20
//! samples of 200,000 redemptions, printing each sample's rate: a steady process for
//! `perf stat -e page-faults,context-switches,cpu-migrations` or `strace -c -f`.

use std::alloc::{GlobalAlloc, Layout, System};
use std::future::Future;
use std::hint::black_box;
use std::pin::pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Barrier;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use criterion::{criterion_group, BenchmarkId, Criterion, Throughput};
use magic_link::conformance::ReferenceStore;
use magic_link::store::{LinkStore, MemoryStore};
use magic_link::{
    Account, AccountId, Flow, IdempotencyKey, Link, LinkId, NewLink, SessionId, SessionTtl,
    UsageLimit,
};

/// Counts live heap bytes, to measure memory per stored object. Counting is switched on only
/// for that measurement: a shared counter bumped on every allocation would couple the threads
/// of the throughput runs.
struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static COUNT: AtomicBool = AtomicBool::new(false);

fn count(delta: isize) {
    if COUNT.load(Ordering::Relaxed) {
        if delta >= 0 {
            LIVE.fetch_add(delta.unsigned_abs(), Ordering::Relaxed);
        } else {
            LIVE.fetch_sub(delta.unsigned_abs(), Ordering::Relaxed);
        }
    }
}

// SAFETY: delegates to the system allocator and only counts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count(layout.size() as isize);
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        count(-(layout.size() as isize));
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count(new_size as isize - layout.size() as isize);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

const LINKS: usize = 100_000;
const ACCOUNTS: usize = 10;
const MIN_BATCH: u64 = 100_000;

/// The in-memory stores finish every operation on the first poll.
fn now_or_never<F: Future>(f: F) -> F::Output {
    let mut f = pin!(f);
    match f.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(v) => v,
        Poll::Pending => unreachable!("in-memory stores never wait"),
    }
}

fn now() -> DateTime<Utc> {
    DateTime::from_timestamp(1_900_000_000, 0).unwrap()
}

/// A store with `accounts` accounts of ample credit and `links` unlimited links spread over them.
fn populate<S: LinkStore>(store: &S, accounts: usize, links: usize) -> Vec<LinkId> {
    let owners: Vec<AccountId> = (0..accounts)
        .map(|_| {
            let id = AccountId::new();
            now_or_never(store.create_account(Account::new(id, now()))).unwrap();
            let key = IdempotencyKey::new("bench").unwrap();
            now_or_never(store.top_up(id, u64::MAX / 2, key, now())).unwrap();
            id
        })
        .collect();
    (0..links)
        .map(|i| {
            let spec = NewLink::new("bench", Flow::DocumentAndSelfie).limit(UsageLimit::Unlimited);
            let link = Link::new(LinkId::new(), owners[i % accounts], spec, now()).unwrap();
            now_or_never(store.insert_link(link)).unwrap().id
        })
        .collect()
}

struct XorShift(u64);

impl XorShift {
    fn next(&mut self, n: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % n as u64) as usize
    }
}

/// Time `iters` redemptions split over `threads` threads, each picking among `links`.
fn run<S: LinkStore>(store: &S, links: &[LinkId], threads: usize, iters: u64) -> Duration {
    let stores = vec![(store, links); threads];
    run_on(&stores, iters)
}

/// Time `iters` redemptions split over one thread per entry of `stores`, each on its own store
/// and links (the same store in every entry, or a store per thread).
fn run_on<S: LinkStore>(stores: &[(&S, &[LinkId])], iters: u64) -> Duration {
    let threads = stores.len();
    let ttl = SessionTtl::default();
    let per_thread = iters.div_ceil(threads as u64);
    let barrier = Barrier::new(threads + 1);
    std::thread::scope(|scope| {
        for (t, &(store, links)) in stores.iter().enumerate() {
            let barrier = &barrier;
            scope.spawn(move || {
                let mut rng = XorShift(0x9E37_79B9_7F4A_7C15 ^ (t as u64 + 1));
                barrier.wait();
                for _ in 0..per_thread {
                    let link = links[rng.next(links.len())];
                    let r =
                        now_or_never(store.redeem(link, SessionId::new(), None, None, ttl, now()));
                    black_box(r.unwrap());
                }
                barrier.wait();
            });
        }
        barrier.wait();
        let start = Instant::now();
        barrier.wait();
        start.elapsed()
    })
}

fn bench_store<S: LinkStore + Default>(c: &mut Criterion, name: &str) {
    let mut group = c.benchmark_group(format!("redeem/{name}"));
    group.throughput(Throughput::Elements(1));
    group.sample_size(15);
    group.warm_up_time(Duration::from_secs(2));
    group.measurement_time(Duration::from_secs(3));
    for (shape, links) in [("hot_link", 1), ("spread_100k_links", LINKS)] {
        for threads in [1, 2] {
            group.bench_function(BenchmarkId::new(shape, format!("{threads}_threads")), |b| {
                b.iter_custom(|iters| {
                    // A fresh store per sample (populating it is not timed): sessions pile up
                    // in a store that lives for millions of redemptions, and then the kernel's
                    // page faults, not the store, set the pace.
                    // At least `MIN_BATCH` redemptions per sample, scaled back to `iters`, so
                    // that starting the threads stays a rounding error.
                    let store = S::default();
                    let ids = populate(&store, ACCOUNTS, links);
                    let n = iters.max(MIN_BATCH);
                    run(&store, &ids, threads, n).mul_f64(iters as f64 / n as f64)
                });
            });
        }
    }
    group.finish();
}

/// The scaling floor: the spread case with a store of its own per thread (each with the same
/// accounts and links as the shared case), populated outside the timing.
fn bench_private_stores(c: &mut Criterion) {
    let mut group = c.benchmark_group("redeem/private_stores");
    group.throughput(Throughput::Elements(1));
    group.sample_size(15);
    group.warm_up_time(Duration::from_secs(2));
    group.measurement_time(Duration::from_secs(3));
    for threads in [1, 2] {
        group.bench_function(
            BenchmarkId::new("spread_100k_links", format!("{threads}_threads")),
            |b| b.iter_custom(|iters| private_sample(threads, ACCOUNTS, iters)),
        );
    }
    group.finish();
}

/// One sample of `iters` redemptions (at least `MIN_BATCH`, scaled back) on `threads` private
/// stores.
fn private_sample(threads: usize, accounts: usize, iters: u64) -> Duration {
    let stores: Vec<(MemoryStore, Vec<LinkId>)> = (0..threads)
        .map(|_| {
            let store = MemoryStore::new();
            let ids = populate(&store, accounts, LINKS);
            (store, ids)
        })
        .collect();
    let refs: Vec<(&MemoryStore, &[LinkId])> =
        stores.iter().map(|(s, ids)| (s, ids.as_slice())).collect();
    let n = iters.max(MIN_BATCH);
    run_on(&refs, n).mul_f64(iters as f64 / n as f64)
}

/// `REDEEM_PROFILE`: see the module docs.
fn profile(spec: &str) {
    let mut parts = spec.split(',');
    let threads: usize = parts
        .next()
        .and_then(|t| t.parse().ok())
        .unwrap_or(1)
        .max(1);
    let mut private = false;
    let mut accounts = ACCOUNTS;
    for part in parts {
        match part.split_once('=') {
            None if part == "private" => private = true,
            Some(("accounts", n)) => accounts = n.parse().unwrap_or(ACCOUNTS).max(1),
            _ => panic!("REDEEM_PROFILE: unknown part {part:?}"),
        }
    }
    const N: u64 = 200_000;
    for sample in 0..20 {
        let elapsed = if private {
            private_sample(threads, accounts, N)
        } else {
            let store = MemoryStore::new();
            let ids = populate(&store, accounts, LINKS);
            run(&store, &ids, threads, N)
        };
        println!(
            "sample {sample}: {threads} thread(s), {accounts} accounts{}: {:.0} ns per redemption",
            if private { ", private stores" } else { "" },
            elapsed.as_nanos() as f64 / N as f64
        );
    }
}

fn redeem(c: &mut Criterion) {
    bench_store::<MemoryStore>(c, "memory_store");
    bench_store::<ReferenceStore>(c, "baseline_one_mutex");
    bench_private_stores(c);
    memory_per_object();
}

fn memory_per_object() {
    const N: usize = 100_000;
    COUNT.store(true, Ordering::SeqCst);
    let before = LIVE.load(Ordering::Relaxed);
    let store = MemoryStore::new();
    let base = LIVE.load(Ordering::Relaxed);
    let links = populate(&store, ACCOUNTS, N);
    let with_links = LIVE.load(Ordering::Relaxed);
    let ttl = SessionTtl::default();
    for link in &links {
        now_or_never(store.redeem(*link, SessionId::new(), None, None, ttl, now())).unwrap();
    }
    let with_sessions = LIVE.load(Ordering::Relaxed);
    // `links` (the id list) is the bench's own, not the store's.
    let ids = links.capacity() * std::mem::size_of::<LinkId>();
    println!(
        "memory: empty MemoryStore {} B; per link {} B; per session {} B (over {N} each, \
         with its ledger entry and outbox event)",
        base.wrapping_sub(before),
        with_links.wrapping_sub(base).wrapping_sub(ids) / N,
        with_sessions.wrapping_sub(with_links) / N,
    );
    drop(store);
    COUNT.store(false, Ordering::SeqCst);
}

criterion_group!(benches, redeem);

fn main() {
    if let Ok(spec) = std::env::var("REDEEM_PROFILE") {
        profile(&spec);
        return;
    }
    benches();
    Criterion::default().configure_from_args().final_summary();
}
