//! What online signing costs: one cold signature (an RRset signed now,
//! as the first query of a name or a refresh does) with each algorithm,
//! and the same RRset's signature taken from the zone's cache (what every
//! later full-path query of it costs; the template path costs neither).
//!
//! Run: `cargo bench --bench signing`.

use std::hint::black_box;
use std::net::Ipv4Addr;
use std::sync::Arc;

use criterion::{Criterion, criterion_group, criterion_main};
use hickory_proto::rr::rdata::A;
use hickory_proto::rr::{Name, RData, RecordType};
use mirrordns::dnssec::{KeyAlgorithm, ZoneKey, ZoneSigner, unix_now};

fn signing(c: &mut Criterion) {
    let owner = Name::from_ascii("www.example.test.").unwrap();
    let rrset = [RData::A(A::from(Ipv4Addr::new(192, 0, 2, 1)))];
    for algorithm in KeyAlgorithm::ALL {
        let key = ZoneKey::generate(algorithm).unwrap();
        let signer = ZoneSigner::new(Name::from_ascii("example.test.").unwrap(), Arc::new(key));
        let now = unix_now();
        c.bench_function(&format!("cold signature, {algorithm}"), |b| {
            b.iter(|| {
                signer
                    .sign(black_box(&owner), RecordType::A, 30, &rrset, now)
                    .unwrap()
            })
        });
        c.bench_function(&format!("cached signature, {algorithm}"), |b| {
            b.iter(|| {
                signer
                    .signature(black_box(&owner), RecordType::A, 30, &rrset, now)
                    .unwrap()
            })
        });
    }
}

criterion_group!(benches, signing);
criterion_main!(benches);
