//! Verifying a token allocates nothing, a personal link token's included (it keeps its
//! reference inline): a counting global allocator watches this thread.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use chrono::DateTime;
use magic_link::tokens::{Keyring, LinkToken, PersonalToken, SessionToken};
use magic_link::{AccountId, LinkId, Reference, SessionId};

struct Counting;

thread_local! {
    static ALLOCATIONS: Cell<usize> = const { Cell::new(0) };
}

// SAFETY: delegates to the system allocator and only counts, in a `const` thread-local that
// never allocates itself.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.with(|n| n.set(n.get() + 1));
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.with(|n| n.set(n.get() + 1));
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

fn allocations() -> usize {
    ALLOCATIONS.with(Cell::get)
}

#[test]
fn verifying_allocates_nothing() {
    let mut keyring = Keyring::generate().unwrap();
    let old = LinkToken::new(LinkId::new(), None).sign(&keyring);
    keyring.rotate().unwrap();
    let now = DateTime::from_timestamp(1_900_000_000, 0).unwrap();
    let expiry = DateTime::from_timestamp(1_900_000_100, 0).unwrap();
    let link = LinkToken::new(LinkId::new(), Some(expiry)).sign(&keyring);
    let session = SessionToken::new(SessionId::new(), AccountId::new(), expiry).sign(&keyring);
    let mut forged = link.clone();
    forged.replace_range(50..51, if &forged[50..51] == "A" { "B" } else { "A" });
    let garbage = "x".repeat(500);
    let inputs = [
        link.as_str(),
        old.as_str(),
        session.as_str(),
        forged.as_str(),
        &link[..59],
        garbage.as_str(),
        "",
        "*",
    ];

    let before = allocations();
    let mut accepted = 0;
    for _ in 0..100 {
        for input in inputs {
            accepted += usize::from(LinkToken::verify(input, &keyring, now).is_ok());
            accepted += usize::from(SessionToken::verify(input, &keyring, now).is_ok());
            accepted += usize::from(LinkToken::verify(input, &keyring, expiry).is_ok());
        }
    }
    let during = allocations() - before;
    // Valid now: the link, the old link (under the older key), the session; at the expiry only
    // the old link, which never expires.
    assert_eq!(accepted, 100 * 4);
    assert_eq!(during, 0, "verification allocated {during} times");

    // The counter works: signing returns a `String`.
    let before = allocations();
    let _ = LinkToken::new(LinkId::new(), None).sign(&keyring);
    assert!(allocations() > before);
}

#[test]
fn verifying_a_personal_token_allocates_nothing() {
    let keyring = Keyring::generate().unwrap();
    let now = DateTime::from_timestamp(1_900_000_000, 0).unwrap();
    let expiry = DateTime::from_timestamp(1_900_000_100, 0).unwrap();
    let longest = Reference::new("é".repeat(64)).unwrap();
    let valid = [
        PersonalToken::new(
            LinkId::new(),
            Some(expiry),
            Reference::new("cus_8f2k").unwrap(),
        )
        .sign(&keyring),
        PersonalToken::new(LinkId::new(), None, longest).sign(&keyring),
    ];
    let expired =
        PersonalToken::new(LinkId::new(), Some(now), Reference::new("a").unwrap()).sign(&keyring);
    let mut forged = valid[1].clone();
    forged.replace_range(100..101, if &forged[100..101] == "A" { "B" } else { "A" });
    let link = LinkToken::new(LinkId::new(), None).sign(&keyring);
    let garbage = "x".repeat(500);
    let rejected = [
        expired.as_str(),
        forged.as_str(),
        &valid[0][..valid[0].len() - 1],
        link.as_str(),
        garbage.as_str(),
        "",
    ];

    let before = allocations();
    for _ in 0..100 {
        for input in rejected {
            assert!(
                PersonalToken::verify(input, &keyring, now).is_err(),
                "{input}"
            );
        }
    }
    let during = allocations() - before;
    assert_eq!(during, 0, "rejecting allocated {during} times");

    let mut accepted = Vec::with_capacity(200);
    let before = allocations();
    for _ in 0..100 {
        for input in &valid {
            accepted.push(PersonalToken::verify(input, &keyring, now).unwrap());
        }
    }
    // The reference is kept inline: accepting allocates nothing either.
    assert_eq!(allocations() - before, 0);
    assert_eq!(accepted[0].reference(), "cus_8f2k");
}
