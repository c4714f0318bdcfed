//! Docker's volume copy-up: an empty volume mounted where the image has a
//! directory gets the image's files, their owners and modes, and the
//! directory's own owner and mode; a volume with anything in it is left
//! alone; `nocopy` turns it off. Each test's [`Ctx`] removes its
//! containers when dropped.

use berth_integration::containers::*;

/// An image whose /data holds files with an owner, modes, a subdir and a
/// symlink (made by commit from the busybox image).
fn image_with_data(c: &Ctx) -> &'static str {
    let script = "mkdir -p /data/sub && echo one > /data/a && echo two > /data/sub/b \
                  && ln -s a /data/link && chown -R 1000:1001 /data && chmod 750 /data \
                  && chmod 640 /data/a";
    c.ok(&["run", "--name", "cu-src", IMG, "sh", "-c", script]);
    c.ok(&["commit", "cu-src", "cu-img:1"]);
    c.ok(&["rm", "cu-src"]);
    "cu-img:1"
}

fn run_sh(c: &Ctx, vol: &str, img: &str, script: &str) -> String {
    c.ok(&["run", "--rm", "-v", vol, img, "sh", "-c", script])
}

const LIST: &str = "stat -c '%u:%g:%a' /data; cd /data && for f in a sub sub/b link; do \
                    stat -c '%n %u:%g %a %F' $f; done; cat a sub/b; readlink link";

#[test]
fn an_empty_volume_gets_the_image_files_once() {
    let c = Ctx::new();
    let img = image_with_data(&c);
    let got = run_sh(&c, "cu-vol:/data", img, LIST);
    assert_eq!(
        got,
        "1000:1001:750\n\
         a 1000:1001 640 regular file\n\
         sub 1000:1001 755 directory\n\
         sub/b 1000:1001 644 regular file\n\
         link 1000:1001 777 symbolic link\n\
         one\ntwo\na\n",
        "the volume as the container sees it"
    );
    // On the host, in the volume itself.
    let v: serde_json::Value =
        serde_json::from_str(&c.ok(&["volume", "inspect", "cu-vol"])).unwrap();
    let mp = v[0]["Mountpoint"].as_str().unwrap().to_string();
    assert_eq!(
        std::fs::read_to_string(format!("{mp}/sub/b")).unwrap(),
        "two\n"
    );
    // Changed data stays: a volume that is not empty is never filled again.
    run_sh(&c, "cu-vol:/data", img, "rm /data/a && echo new > /data/c");
    let got = run_sh(&c, "cu-vol:/data", img, "ls /data");
    assert_eq!(got, "c\nlink\nsub\n");
    // Anonymous volumes (`-v /data`) are filled too.
    let got = run_sh(&c, "/data", img, "cat /data/a");
    assert_eq!(got, "one\n");
}

#[test]
fn nocopy_and_paths_the_image_lacks_leave_the_volume_empty() {
    let c = Ctx::new();
    let img = image_with_data(&c);
    assert_eq!(run_sh(&c, "cu-nc:/data:nocopy", img, "ls -A /data"), "");
    let got = c.ok(&[
        "run",
        "--rm",
        "--mount",
        "type=volume,src=cu-nc2,dst=/data,volume-nocopy",
        img,
        "ls",
        "-A",
        "/data",
    ]);
    assert_eq!(got, "");
    assert_eq!(
        run_sh(&c, "cu-none:/not-in-image", img, "ls -A /not-in-image"),
        ""
    );
    // A volume emptied by nocopy is filled by the next container without it.
    assert_eq!(run_sh(&c, "cu-nc:/data", img, "cat /data/a"), "one\n");
}
