//! The simulated locker's updater (PROTOCOL.md §11.2): a whole update, resume after a power cut,
//! a corrupted chunk, a bad signature, a bad hash, a failed boot and its rollback.

use ed25519_dalek::{Signer, SigningKey};
use firmware_protocol::update::chunk_crc;
use firmware_protocol::*;
use simulator::{SimLocker, Updater};

const CHUNK: u16 = 64;

fn vendor() -> SigningKey {
    SigningKey::from_bytes(&[7; 32])
}

fn image(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 31 % 251) as u8).collect()
}

fn offer_of(id: u32, version: &str, image: &[u8], key: &SigningKey) -> UpdateOffer {
    let sha256 = image::digest(image);
    let manifest = image::manifest(version, image.len() as u64, &sha256).expect("manifest");
    UpdateOffer {
        update_id: id,
        version: version.into(),
        size: image.len() as u32,
        sha256,
        signature: key.sign(&manifest).to_bytes(),
        chunk_size: CHUNK,
    }
}

fn chunk_of(id: u32, image: &[u8], index: u32) -> Chunk {
    let start = index as usize * usize::from(CHUNK);
    let data = image[start..(start + usize::from(CHUNK)).min(image.len())].to_vec();
    Chunk {
        update_id: id,
        index,
        crc32: chunk_crc(&data),
        data,
    }
}

fn updater() -> Updater {
    Updater::new(vec![vendor().verifying_key().to_bytes()], 512, 64 * 1024)
}

fn wants(uplink: Option<Uplink>) -> Option<u32> {
    match uplink {
        Some(Uplink::ChunkRequest(r)) => Some(r.index),
        _ => None,
    }
}

fn status(uplink: Option<Uplink>) -> Option<UpdateStatus> {
    match uplink {
        Some(Uplink::UpdateReport(r)) => Some(r.status),
        _ => None,
    }
}

/// Feeds chunks from `from` as the locker asks, until it reports; returns the report's status.
fn download(u: &mut Updater, image: &[u8], id: u32, from: u32) -> UpdateStatus {
    let mut next = from;
    loop {
        let answer = u.chunk(chunk_of(id, image, next));
        match answer {
            Some(Uplink::ChunkRequest(r)) => next = r.index,
            Some(Uplink::UpdateReport(r)) => return r.status,
            other => panic!("unexpected answer {other:?}"),
        }
    }
}

#[test]
fn a_whole_update_downloads_installs_and_confirms_itself() {
    let img = image(1000); // 16 chunks, the last 40 bytes
    let mut u = updater();
    let offer = offer_of(5, "2.0.0", &img, &vendor());
    assert_eq!(wants(Some(u.offer(offer.clone(), "1.0.0"))), Some(0));
    assert_eq!(download(&mut u, &img, 5, 0), UpdateStatus::Downloaded);
    // Offered again (an answer was lost): where it stands.
    assert_eq!(
        status(Some(u.offer(offer.clone(), "1.0.0"))),
        Some(UpdateStatus::Downloaded)
    );
    assert_eq!(
        status(Some(u.install(5, "1.0.0"))),
        Some(UpdateStatus::Installing)
    );
    assert!(u.take_reboot(), "an install reboots the locker");
    assert!(!u.take_reboot(), "once");
    assert_eq!(u.boot(), Some("2.0.0".to_owned()));
    assert_eq!(status(u.take_boot_report()), Some(UpdateStatus::Installed));
    assert_eq!(u.take_boot_report(), None, "the boot report goes out once");
    // A finished update offered again is answered with its report.
    assert_eq!(
        status(Some(u.offer(offer, "2.0.0"))),
        Some(UpdateStatus::Installed)
    );
}

#[test]
fn a_power_cut_mid_download_resumes_after_the_last_good_chunk() {
    let img = image(1000);
    let mut sim = SimLocker::new(
        DeviceId::new("lk-9").expect("id"),
        DeviceSecret::from_bytes([1; 32]).tag_key(),
        4,
    );
    sim.updater = Some(updater());
    let u = sim.updater.as_mut().expect("updater");
    u.faults.power_cut_after = Some(6);
    u.offer(offer_of(9, "2.0.0", &img, &vendor()), "1.0.0");
    let mut next = 0;
    while !sim.updater.as_mut().expect("updater").power_cut_due() {
        next = wants(
            sim.updater
                .as_mut()
                .expect("updater")
                .chunk(chunk_of(9, &img, next)),
        )
        .expect("asks on");
    }
    assert_eq!(next, 6, "six chunks written before the power went");
    sim.reboot();
    let hello = sim.connect(77, 5);
    assert!(
        matches!(
            hello.message,
            Uplink::Hello(Hello {
                max_chunk: Some(512),
                ..
            })
        ),
        "{hello:?}"
    );
    let u = sim.updater.as_mut().expect("updater");
    assert_eq!(u.progress(), Some((6, 16)));
    // The gateway offers the same update again on the hello: the locker asks for chunk 6.
    assert_eq!(
        wants(Some(
            u.offer(offer_of(9, "2.0.0", &img, &vendor()), "1.0.0")
        )),
        Some(6)
    );
    assert_eq!(download(u, &img, 9, 6), UpdateStatus::Downloaded);
}

#[test]
fn a_corrupted_chunk_is_asked_for_again_and_three_failures_give_up() {
    let img = image(300);
    let mut u = updater();
    u.faults.corrupt_chunks.insert(2);
    u.offer(offer_of(3, "2.0.0", &img, &vendor()), "1.0.0");
    for i in 0..2 {
        assert_eq!(wants(u.chunk(chunk_of(3, &img, i))), Some(i + 1));
    }
    assert_eq!(
        wants(u.chunk(chunk_of(3, &img, 2))),
        Some(2),
        "read back wrong: again"
    );
    assert_eq!(
        wants(u.chunk(chunk_of(3, &img, 2))),
        Some(3),
        "written right the second time"
    );
    // A chunk whose CRC does not hold, three times: flash_error.
    let mut bad = chunk_of(3, &img, 3);
    bad.data[0] ^= 1;
    assert_eq!(wants(u.chunk(bad.clone())), Some(3));
    assert_eq!(wants(u.chunk(bad.clone())), Some(3));
    assert_eq!(
        status(u.chunk(bad)),
        Some(UpdateStatus::Failed(UpdateFailure::FlashError))
    );
    // Another index or another update's chunk is not taken.
    let mut u = updater();
    u.offer(offer_of(4, "2.0.0", &img, &vendor()), "1.0.0");
    assert_eq!(
        wants(u.chunk(chunk_of(4, &img, 3))),
        Some(0),
        "out of order: asks for its own"
    );
    assert_eq!(
        u.chunk(chunk_of(99, &img, 0)),
        None,
        "another update's chunk is ignored"
    );
}

#[test]
fn a_bad_signature_is_refused_before_anything_is_erased() {
    let img = image(300);
    let mut u = updater();
    let mut tampered = offer_of(6, "2.0.0", &img, &vendor());
    tampered.sha256[0] ^= 1; // another image under the vendor's signature
    assert_eq!(
        status(Some(u.offer(tampered, "1.0.0"))),
        Some(UpdateStatus::Refused(UpdateFailure::BadSignature))
    );
    let other_vendor = SigningKey::from_bytes(&[8; 32]);
    assert_eq!(
        status(Some(
            u.offer(offer_of(6, "2.0.0", &img, &other_vendor), "1.0.0")
        )),
        Some(UpdateStatus::Refused(UpdateFailure::BadSignature))
    );
    assert_eq!(u.progress(), None, "nothing started");
    let mut big = offer_of(7, "2.0.0", &image(70_000), &vendor());
    big.chunk_size = CHUNK;
    assert_eq!(
        status(Some(u.offer(big, "1.0.0"))),
        Some(UpdateStatus::Refused(UpdateFailure::TooLarge))
    );
    assert_eq!(
        status(Some(u.install(6, "1.0.0"))),
        Some(UpdateStatus::Refused(UpdateFailure::UnknownUpdate))
    );
    // The version it already runs: installed at once.
    assert_eq!(
        status(Some(
            u.offer(offer_of(8, "1.0.0", &img, &vendor()), "1.0.0")
        )),
        Some(UpdateStatus::Installed)
    );
}

#[test]
fn an_image_that_is_not_the_signed_one_fails_its_hash() {
    let img = image(300);
    let mut other = img.clone();
    other[200] ^= 0xff;
    let mut u = updater();
    u.offer(offer_of(2, "2.0.0", &img, &vendor()), "1.0.0");
    assert_eq!(
        download(&mut u, &other, 2, 0),
        UpdateStatus::Failed(UpdateFailure::BadHash)
    );
    assert_eq!(
        status(Some(u.install(2, "1.0.0"))),
        Some(UpdateStatus::Failed(UpdateFailure::BadHash))
    );
}

#[test]
fn a_new_image_that_does_not_confirm_itself_is_rolled_back() {
    let img = image(300);
    let mut sim = SimLocker::new(
        DeviceId::new("lk-8").expect("id"),
        DeviceSecret::from_bytes([1; 32]).tag_key(),
        4,
    );
    sim.run_firmware("1.0.0");
    let mut u = updater();
    u.faults.fail_boot = true;
    u.offer(offer_of(1, "2.0.0", &img, &vendor()), "1.0.0");
    assert_eq!(download(&mut u, &img, 1, 0), UpdateStatus::Downloaded);
    u.install(1, "1.0.0");
    sim.updater = Some(u);
    sim.reboot();
    let hello = sim.connect(5, 1);
    assert!(
        matches!(&hello.message, Uplink::Hello(h) if h.firmware == "1.0.0"),
        "the old image runs: {hello:?}"
    );
    let report = sim.boot_report().expect("a report after the boot");
    assert!(
        matches!(
            report.message,
            Uplink::UpdateReport(UpdateReport {
                status: UpdateStatus::RolledBack,
                ..
            })
        ),
        "{report:?}"
    );
}
