use super::*;
use zip::write::SimpleFileOptions;

const MANIFEST: &str = r#"{"app_name":"notes","version":"1.0.0"}"#;
const MAIN: &str = "def execute(data, conn=None):\n    return {}\n";

enum E<'a> {
    File(&'a str, &'a [u8]),
    Mode(&'a str, u32),
    Link(&'a str, &'a str),
    Dir(&'a str),
}

fn build(entries: &[E]) -> Vec<u8> {
    let mut buf = Cursor::new(Vec::new());
    {
        let mut w = zip::ZipWriter::new(&mut buf);
        let opts =
            SimpleFileOptions::default().compression_method(zip::CompressionMethod::Deflated);
        for e in entries {
            match e {
                E::File(name, body) => {
                    w.start_file(*name, opts).unwrap();
                    w.write_all(body).unwrap();
                }
                E::Mode(name, mode) => {
                    w.start_file(*name, opts.external_attributes(mode << 16))
                        .unwrap();
                    w.write_all(b"x").unwrap();
                }
                E::Link(name, target) => w.add_symlink(*name, *target, opts).unwrap(),
                E::Dir(name) => w.add_directory(*name, opts).unwrap(),
            }
        }
        w.finish().unwrap();
    }
    buf.into_inner()
}

fn good(extra: &[E]) -> Vec<u8> {
    let mut all = vec![
        E::File("manifest.json", MANIFEST.as_bytes()),
        E::File("main.py", MAIN.as_bytes()),
    ];
    for e in extra {
        all.push(match e {
            E::File(a, b) => E::File(a, b),
            E::Mode(a, m) => E::Mode(a, *m),
            E::Link(a, b) => E::Link(a, b),
            E::Dir(a) => E::Dir(a),
        });
    }
    build(&all)
}

fn refused(bytes: &[u8]) -> Refused {
    unpack(bytes, &Limits::default(), None).unwrap_err()
}

#[test]
fn a_guide_layout_unpacks_with_its_texts() {
    let z = good(&[
        E::Dir("libs/"),
        E::File("libs/pkg/__init__.py", b""),
        E::File("index.js", b"x"),
        E::File("libs/x.js", b"y"),
    ]);
    let dir = tempfile::tempdir().unwrap();
    let u = unpack(&z, &Limits::default(), Some(dir.path())).unwrap();
    assert_eq!(u.root, "");
    assert!(u.has_file("main.py") && u.has_file("libs/pkg/__init__.py"));
    assert!(u.texts.contains_key("manifest.json") && u.texts.contains_key("index.js"));
    assert!(
        !u.texts.contains_key("libs/x.js"),
        "vendored code is not linted"
    );
    assert_eq!(
        std::fs::read_to_string(dir.path().join("main.py")).unwrap(),
        MAIN
    );
    assert!(dir.path().join("libs/pkg/__init__.py").is_file());
}

#[test]
fn a_single_wrapping_folder_is_the_root_and_macos_metadata_is_ignored() {
    let z = build(&[
        E::File("notes/manifest.json", MANIFEST.as_bytes()),
        E::File("notes/main.py", MAIN.as_bytes()),
        E::File("notes/.DS_Store", b"junk"),
        E::File("__MACOSX/notes/._main.py", b"junk"),
        E::File(".DS_Store", b"junk"),
    ]);
    let dir = tempfile::tempdir().unwrap();
    let u = unpack(&z, &Limits::default(), Some(dir.path())).unwrap();
    assert_eq!(u.root, "notes/");
    assert_eq!(u.files, ["manifest.json", "main.py"]);
    assert!(!dir.path().join(".DS_Store").exists());
    assert!(!dir.path().join("__MACOSX").exists());
}

#[test]
fn any_other_layout_is_refused_with_how_to_zip() {
    let r = refused(&build(&[
        E::File("a/b/manifest.json", MANIFEST.as_bytes()),
        E::File("a/b/main.py", b""),
    ]));
    assert_eq!(
        (r.status, r.details[0].rule.as_str()),
        (422, "bundle.layout")
    );
    assert!(
        r.error.contains("a/b/manifest.json") && r.error.contains("zip -r"),
        "{}",
        r.error
    );
    let r = refused(&build(&[
        E::File("notes/manifest.json", MANIFEST.as_bytes()),
        E::File("README", b""),
    ]));
    assert!(r.error.contains("zip -r"));
    let r = refused(&build(&[E::File("main.py", b"")]));
    assert!(r.error.contains("manifest.json is missing"));
    let r = refused(&build(&[]));
    assert!(r.error.contains("empty"));
}

#[test]
fn entry_names_escaping_the_root_are_refused() {
    for (name, why) in [
        ("../evil.py", "'..'"),
        ("a/../../evil.py", "'..'"),
        ("/etc/passwd", "absolute"),
        ("C:/x.py", "drive letter"),
        ("c:x.py", "drive letter"),
        ("a\\..\\evil.py", "backslashes"),
        ("a//b.py", "empty or '.'"),
        ("./main2.py", "empty or '.'"),
        ("bad\0name.py", "NUL"),
    ] {
        let r = refused(&good(&[E::File(name, b"x")]));
        assert_eq!(r.status, 422, "{name:?}");
        assert_eq!(r.details[0].rule, "bundle.path", "{name:?}");
        assert!(r.error.contains(why), "{name:?}: {}", r.error);
    }
}

#[test]
fn names_the_runners_disk_cannot_hold_are_refused_naming_the_entry() {
    let long_segment = format!("{}.js", "a".repeat(300));
    let long_path = vec!["b".repeat(200); 6].join("/");
    for (name, why) in [
        (long_segment.as_str(), "over 255 bytes"),
        (long_path.as_str(), "longer than 1024 bytes"),
    ] {
        let r = refused(&good(&[E::File(name, b"x")]));
        assert_eq!(r.status, 422, "{name:?}");
        assert_eq!(r.details[0].rule, "bundle.path", "{name:?}");
        assert!(r.error.contains(why), "{name:?}: {}", r.error);
    }
    let fine = format!("{}.js", "a".repeat(250));
    assert!(unpack(&good(&[E::File(&fine, b"x")]), &Limits::default(), None).is_ok());
}

#[test]
fn page_files_over_what_the_gateway_keeps_are_refused() {
    use nr_contracts::bundle::{MAX_PUBLIC_BYTES, MAX_PUBLIC_FILE_BYTES};
    // Bytes that do not compress, so no ratio rule steps in first.
    let noise = |n: usize, seed: u64| -> Vec<u8> {
        let mut x = seed | 1;
        (0..n)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect()
    };
    let big = noise(MAX_PUBLIC_FILE_BYTES as usize + 1, 7);
    let r = refused(&good(&[E::File("img/huge.png", &big)]));
    assert_eq!(
        (r.status, r.details[0].rule.as_str()),
        (413, "bundle.public_file_size")
    );
    assert!(r.error.contains("img/huge.png"), "{}", r.error);
    // The same bytes under libs/ are the app's own data, not a page file.
    assert!(unpack(
        &good(&[E::File("libs/huge.bin", &big)]),
        &Limits::default(),
        None
    )
    .is_ok());
    // Each under the per-file size, too many together.
    let part = noise(MAX_PUBLIC_FILE_BYTES as usize, 11);
    let n = (MAX_PUBLIC_BYTES / MAX_PUBLIC_FILE_BYTES) as usize + 1;
    let names: Vec<String> = (0..n).map(|i| format!("img/{i}.png")).collect();
    let files: Vec<E> = names.iter().map(|n| E::File(n, &part)).collect();
    let r = refused(&good(&files));
    assert_eq!(
        (r.status, r.details[0].rule.as_str()),
        (413, "bundle.public_size")
    );
}

#[test]
fn unsafe_name_table() {
    assert_eq!(unsafe_name(b"libs/pkg/x.py"), None);
    assert_eq!(unsafe_name(b"libs/"), None);
    assert_eq!(unsafe_name(b"a..b/c"), None, "dots inside a name are fine");
    assert!(unsafe_name(b"").is_some());
    assert!(unsafe_name(b"..").is_some());
    assert!(unsafe_name(b"x/..").is_some());
}

#[test]
fn symlinks_and_special_files_are_refused() {
    let r = refused(&good(&[E::Link("link.py", "/etc/passwd")]));
    assert_eq!(r.details[0].rule, "bundle.link");
    assert!(r.error.contains("symbolic link"), "{}", r.error);
    let r = refused(&good(&[E::Mode("pipe", 0o010_644)]));
    assert!(r.error.contains("named pipe"), "{}", r.error);
    let r = refused(&good(&[E::Mode("dev", 0o020_644)]));
    assert!(r.error.contains("device"), "{}", r.error);
    assert!(unpack(
        &good(&[E::Mode("ok.py", 0o100_644)]),
        &Limits::default(),
        None
    )
    .is_ok());
}

#[test]
fn special_kind_reads_the_unix_type_bits() {
    assert_eq!(special_kind(None), None);
    assert_eq!(special_kind(Some(0o100_755)), None);
    assert_eq!(special_kind(Some(0o040_755)), None);
    assert_eq!(special_kind(Some(0o120_777)), Some("a symbolic link"));
    assert_eq!(special_kind(Some(0o140_777)), Some("a socket"));
}

#[test]
fn names_colliding_after_case_folding_are_refused() {
    let r = refused(&good(&[E::File("Main.py", b"x")]));
    assert_eq!(r.details[0].rule, "bundle.case_collision");
    assert!(
        r.error.contains("\"Main.py\"") && r.error.contains("\"main.py\""),
        "{}",
        r.error
    );
    let r = refused(&good(&[
        E::File("Libs/a.py", b""),
        E::File("libs/b.py", b""),
    ]));
    assert!(r.error.contains("folder"), "{}", r.error);
    let r = refused(&good(&[E::File("data", b""), E::File("data/x", b"")]));
    assert!(
        r.error.contains("file") && r.error.contains("folder"),
        "{}",
        r.error
    );
}

#[test]
fn too_many_entries_is_413() {
    let names: Vec<String> = (0..20).map(|i| format!("f{i}.txt")).collect();
    let extra: Vec<E> = names.iter().map(|n| E::File(n, b"")).collect();
    let limits = Limits {
        max_entries: 10,
        ..Limits::default()
    };
    let r = unpack(&good(&extra), &limits, None).unwrap_err();
    assert_eq!(
        (r.status, r.details[0].rule.as_str()),
        (413, "bundle.entries")
    );
    assert!(
        r.error.contains("22 entries; the limit is 10"),
        "{}",
        r.error
    );
}

#[test]
fn a_zip_bomb_is_refused_on_its_ratio() {
    let zeros = vec![0u8; 8 * 1024 * 1024];
    let r = refused(&good(&[E::File("bomb.bin", &zeros)]));
    assert_eq!(
        (r.status, r.details[0].rule.as_str()),
        (413, "bundle.ratio")
    );
    assert!(r.error.contains("zip bomb"), "{}", r.error);
    // A small, very compressible file is fine.
    assert!(unpack(
        &good(&[E::File("blank.txt", &vec![b' '; 100_000])]),
        &Limits::default(),
        None
    )
    .is_ok());
}

#[test]
fn per_entry_and_total_sizes_are_limited() {
    let data: Vec<u8> = (0..50_000u32)
        .flat_map(|i| i.wrapping_mul(2_654_435_761).to_le_bytes())
        .collect();
    let limits = Limits {
        max_entry_bytes: 100_000,
        ..Limits::default()
    };
    let r = unpack(&good(&[E::File("big.bin", &data)]), &limits, None).unwrap_err();
    assert_eq!(
        (r.status, r.details[0].rule.as_str()),
        (413, "bundle.entry_size")
    );
    let limits = Limits {
        max_total_bytes: 300_000,
        ..Limits::default()
    };
    let r = unpack(
        &good(&[
            E::File("a.bin", &data[..150_000]),
            E::File("b.bin", &data[..180_000]),
        ]),
        &limits,
        None,
    )
    .unwrap_err();
    assert_eq!(
        (r.status, r.details[0].rule.as_str()),
        (413, "bundle.total_size")
    );
}

/// Rewrites the uncompressed size of every entry in local and central headers.
fn lie_about_sizes(mut z: Vec<u8>, size: u32) -> Vec<u8> {
    let mut i = 0;
    while i + 30 < z.len() {
        let sig = u32::from_le_bytes([z[i], z[i + 1], z[i + 2], z[i + 3]]);
        if sig == 0x0403_4b50 {
            z[i + 22..i + 26].copy_from_slice(&size.to_le_bytes());
        } else if sig == 0x0201_4b50 {
            z[i + 24..i + 28].copy_from_slice(&size.to_le_bytes());
        }
        i += 1;
    }
    z
}

#[test]
fn headers_understating_sizes_do_not_get_past_the_inflater() {
    let data: Vec<u8> = (0..50_000u32)
        .flat_map(|i| i.wrapping_mul(2_654_435_761).to_le_bytes())
        .collect();
    let z = lie_about_sizes(good(&[E::File("big.bin", &data)]), 10);
    let limits = Limits {
        max_entry_bytes: 100_000,
        ..Limits::default()
    };
    let r = unpack(&z, &limits, None).unwrap_err();
    // Counting while inflating stops an entry at the limit; an understated header is
    // caught on the way as well.
    assert_eq!(
        (r.status, r.details[0].rule.as_str()),
        (422, "bundle.zip"),
        "{r:?}"
    );
    assert!(r.error.contains("larger than its declared"), "{}", r.error);
}

#[test]
fn not_a_zip_is_400() {
    let r = refused(b"hello, not a zip");
    assert_eq!((r.status, r.details[0].rule.as_str()), (400, "bundle.zip"));
    assert!(
        r.error.contains("the file is not a zip archive"),
        "{}",
        r.error
    );
    assert!(!r.error.contains("EOCD"), "{}", r.error);
}

#[test]
fn bundle_name_strips_directories_and_extension() {
    assert_eq!(bundle_name("C:\\tmp\\notes.zip"), "notes");
    assert_eq!(bundle_name("/a/notes.zip"), "notes");
    assert_eq!(bundle_name("notes"), "notes");
}

#[test]
fn ignored_names() {
    assert!(is_ignored("__MACOSX/x/._a"));
    assert!(is_ignored(".DS_Store") && is_ignored("a/.DS_Store"));
    assert!(!is_ignored("main.py") && !is_ignored("DS_Store"));
}

#[test]
fn path_property_plain_segments_pass_and_any_escape_is_caught() {
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = move |n: u64| {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x % n
    };
    let alphabet = b"abcXYZ019_-.";
    for _ in 0..2000 {
        let segments: Vec<String> = (0..1 + next(4))
            .map(|_| {
                let mut s: String = (0..1 + next(8))
                    .map(|_| alphabet[next(alphabet.len() as u64) as usize] as char)
                    .collect();
                if s.chars().all(|c| c == '.') {
                    s.push('a');
                }
                s
            })
            .collect();
        let plain = segments.join("/");
        assert_eq!(unsafe_name(plain.as_bytes()), None, "{plain:?}");
        assert_eq!(
            unsafe_name(format!("{plain}/").as_bytes()),
            None,
            "{plain:?}/"
        );
        let at = next(segments.len() as u64 + 1) as usize;
        let mut escaped = segments.clone();
        escaped.insert(at, "..".into());
        assert!(
            unsafe_name(escaped.join("/").as_bytes()).is_some(),
            "{escaped:?}"
        );
        for bad in [
            format!("/{plain}"),
            format!("C:{plain}"),
            plain.replacen('/', "\\", 1) + "\\x",
            format!("{plain}\0"),
        ] {
            assert!(unsafe_name(bad.as_bytes()).is_some(), "{bad:?}");
        }
    }
}
