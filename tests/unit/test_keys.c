/* test_keys: CurveZMQ key files: Z85 against the RFC 32 test vector, malformed keys, the permission
 * rule for secret key files, allow-list directories, and keygen's O_EXCL writer. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "ed_keys.h"
#include "tu.h"

/* ZeroMQ RFC 32: bytes 86 4F D2 6F B5 59 F7 5B encode as "HelloWorld"; 4 zero bytes as "00000". */
static void test_z85_vector(void **state)
{
    (void)state;
    uint8_t bin[ED_KEY_BYTES] = {0x86, 0x4F, 0xD2, 0x6F, 0xB5, 0x59, 0xF7, 0x5B};
    ed_key k, back;
    ed_key_from_bin(bin, &k);
    assert_string_equal(k.z85, "HelloWorld000000000000000000000000000000");
    ed_err err = {0};
    assert_int_equal(ed_key_from_z85(k.z85, &back, &err), 0);
    assert_memory_equal(back.bin, bin, ED_KEY_BYTES);
    for (int t = 0; t < 50; t++) { /* round trip of arbitrary bytes, including 0xFF runs */
        for (int i = 0; i < ED_KEY_BYTES; i++)
            bin[i] = (uint8_t)(t % 3 == 0 ? 0xFF : (i * 37 + t * 101) & 0xFF);
        ed_key_from_bin(bin, &k);
        assert_int_equal(strlen(k.z85), ED_KEY_Z85_LEN);
        assert_int_equal(ed_key_from_z85(k.z85, &back, &err), 0);
        assert_memory_equal(back.bin, bin, ED_KEY_BYTES);
    }
}

static void test_z85_errors(void **state)
{
    (void)state;
    ed_key k;
    ed_err err = {0};
    assert_int_equal(ed_key_from_z85("HelloWorld", &k, &err), ED_EFORMAT);
    assert_non_null(strstr(err.msg, "10 characters, expected 40"));
    assert_int_equal(ed_key_from_z85("HelloWorld00000000000000000000000000000~", &k, &err),
                     ED_EFORMAT);
    assert_non_null(strstr(err.msg, "character 40"));
    /* "#####" is 85^5 - 1 > 2^32 - 1: no 4 bytes encode to it */
    assert_int_equal(ed_key_from_z85("#####00000000000000000000000000000000000", &k, &err),
                     ED_EFORMAT);
    assert_non_null(strstr(err.msg, "characters 1..5"));
}

static ed_keypair s_pair(uint8_t seed)
{
    uint8_t a[ED_KEY_BYTES], b[ED_KEY_BYTES];
    for (int i = 0; i < ED_KEY_BYTES; i++) {
        a[i] = (uint8_t)(seed * 7 + i);
        b[i] = (uint8_t)(seed * 13 + 3 * i);
    }
    ed_keypair kp;
    ed_key_from_bin(a, &kp.public_key);
    ed_key_from_bin(b, &kp.secret_key);
    return kp;
}

static char *s_path(const char *dir, const char *name)
{
    size_t n = strlen(dir) + strlen(name) + 2;
    char *p = malloc(n);
    snprintf(p, n, "%s/%s", dir, name);
    return p;
}

static void test_write_and_load(void **state)
{
    (void)state;
    char *dir = tu_temp_path(".d");
    assert_int_equal(mkdir(dir, 0700), 0);
    char *prefix = s_path(dir, "w"), *key = s_path(dir, "w.key"), *pub = s_path(dir, "w.pub");
    ed_keypair kp = s_pair(1), kp2 = s_pair(2), got;
    ed_err err = {0};
    umask(0); /* the writer must not rely on the umask for the secret file's mode */
    assert_int_equal(ed_keys_write_pair(prefix, &kp, "for the test", false, &err), 0);
    umask(022);
    struct stat st;
    assert_int_equal(stat(key, &st), 0);
    assert_int_equal(st.st_mode & 07777, 0600);
    assert_int_equal(stat(pub, &st), 0);
    assert_int_equal(st.st_mode & 07777, 0644);
    assert_int_equal(ed_keys_load_secret(key, &got, &err), 0);
    assert_string_equal(got.public_key.z85, kp.public_key.z85);
    assert_string_equal(got.secret_key.z85, kp.secret_key.z85);
    ed_key p;
    assert_int_equal(ed_keys_load_public(pub, &p, &err), 0);
    assert_string_equal(p.z85, kp.public_key.z85);
    /* a secret file is not a public key */
    assert_int_equal(ed_keys_load_public(key, &p, &err), ED_EINVAL);
    assert_non_null(strstr(err.msg, "SECRET key"));

    /* no overwrite without force; nothing changes */
    assert_int_equal(ed_keys_write_pair(prefix, &kp2, NULL, false, &err), ED_EINVAL);
    assert_non_null(strstr(err.msg, "exists"));
    assert_int_equal(ed_keys_load_secret(key, &got, &err), 0);
    assert_string_equal(got.secret_key.z85, kp.secret_key.z85);
    /* force replaces, mode stays 0600 even if the old file was looser */
    chmod(key, 0644);
    assert_int_equal(ed_keys_write_pair(prefix, &kp2, NULL, true, &err), 0);
    assert_int_equal(stat(key, &st), 0);
    assert_int_equal(st.st_mode & 07777, 0600);
    assert_int_equal(ed_keys_load_secret(key, &got, &err), 0);
    assert_string_equal(got.secret_key.z85, kp2.secret_key.z85);

    unlink(key);
    unlink(pub);
    rmdir(dir);
    free(prefix);
    free(key);
    free(pub);
    free(dir);
}

static void test_secret_permissions(void **state)
{
    (void)state;
    char *dir = tu_temp_path(".d");
    assert_int_equal(mkdir(dir, 0700), 0);
    char *prefix = s_path(dir, "p"), *key = s_path(dir, "p.key"), *pub = s_path(dir, "p.pub");
    ed_keypair kp = s_pair(3), got;
    ed_err err = {0};
    assert_int_equal(ed_keys_write_pair(prefix, &kp, NULL, false, &err), 0);
    static const struct {
        mode_t mode;
        int ok_nonroot, ok_root;
    } cases[] = {{0600, 1, 1}, {0400, 1, 1}, {0640, 0, 1}, {0440, 0, 1},
                 {0660, 0, 0}, {0604, 0, 0}, {0644, 0, 0}, {0666, 0, 0}};
    bool root = geteuid() == 0; /* files we create are then root-owned */
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        assert_int_equal(chmod(key, cases[i].mode), 0);
        int rc = ed_keys_load_secret(key, &got, &err);
        int want_ok = root ? cases[i].ok_root : cases[i].ok_nonroot;
        if (want_ok) {
            assert_int_equal(rc, 0);
        } else {
            char mode[16];
            snprintf(mode, sizeof mode, "mode %04o", (unsigned)cases[i].mode);
            assert_int_equal(rc, ED_EINVAL);
            assert_non_null(strstr(err.msg, key));
            assert_non_null(strstr(err.msg, mode));
            assert_non_null(strstr(err.msg, "chmod 600"));
        }
    }
    /* not a regular file */
    assert_int_equal(ed_keys_load_secret(dir, &got, &err), ED_EINVAL);
    assert_non_null(strstr(err.msg, "not a regular file"));
    /* public file given as the secret one */
    chmod(pub, 0600);
    assert_int_equal(ed_keys_load_secret(pub, &got, &err), ED_EFORMAT);
    assert_non_null(strstr(err.msg, "no secret-key line"));
    /* bad key text names file and line */
    const char bad[] = "curve\n    public-key = \"HelloWorld\"\n";
    assert_int_equal(tu_write_file(pub, bad, sizeof bad - 1), 0);
    ed_key p;
    assert_int_equal(ed_keys_load_public(pub, &p, &err), ED_EFORMAT);
    assert_non_null(strstr(err.msg, ":2:"));
    unlink(key);
    unlink(pub);
    rmdir(dir);
    free(prefix);
    free(key);
    free(pub);
    free(dir);
}

static void test_allowlist(void **state)
{
    (void)state;
    char *dir = tu_temp_path(".d");
    assert_int_equal(mkdir(dir, 0700), 0);
    ed_keypair a = s_pair(4), b = s_pair(5), c = s_pair(6);
    ed_err err = {0};
    ed_key *keys = NULL;
    int n = -1;
    /* empty directory: refused */
    assert_int_equal(ed_keys_load_allowlist(dir, &keys, &n, &err), ED_EINVAL);
    assert_non_null(strstr(err.msg, "no *.pub file"));

    char *pa = s_path(dir, "a"), *pb = s_path(dir, "b.pub"), *pnote = s_path(dir, "notes.txt");
    assert_int_equal(ed_keys_write_pair(pa, &a, NULL, false, &err), 0); /* a.key is not *.pub */
    char text[256];
    snprintf(text, sizeof text, "# two bare keys, one of them a's again\n%s\n%s\n",
             b.public_key.z85, a.public_key.z85);
    assert_int_equal(tu_write_file(pb, text, strlen(text)), 0);
    snprintf(text, sizeof text, "%s\n", c.public_key.z85);
    assert_int_equal(tu_write_file(pnote, text, strlen(text)), 0); /* ignored: not .pub */
    assert_int_equal(ed_keys_load_allowlist(dir, &keys, &n, &err), 0);
    assert_int_equal(n, 2); /* a.pub, then b.pub's b (its copy of a is a duplicate) */
    assert_string_equal(keys[0].z85, a.public_key.z85);
    assert_string_equal(keys[1].z85, b.public_key.z85);
    free(keys);
    /* one file */
    assert_int_equal(ed_keys_load_allowlist(pb, &keys, &n, &err), 0);
    assert_int_equal(n, 2);
    free(keys);
    /* a secret key file is refused as an allow-list */
    char *ka = s_path(dir, "a.key");
    assert_int_equal(ed_keys_load_allowlist(ka, &keys, &n, &err), ED_EINVAL);
    assert_non_null(strstr(err.msg, "SECRET"));
    assert_null(keys);
    /* ... and so is a .pub file holding a secret */
    char *pbad = s_path(dir, "z.pub");
    assert_int_equal(rename(ka, pbad), 0);
    assert_int_equal(ed_keys_load_allowlist(dir, &keys, &n, &err), ED_EINVAL);
    assert_non_null(strstr(err.msg, "z.pub"));
    char *apub = s_path(dir, "a.pub");
    unlink(pbad);
    unlink(apub);
    unlink(pb);
    unlink(pnote);
    rmdir(dir);
    free(apub);
    free(pbad);
    free(ka);
    free(pa);
    free(pb);
    free(pnote);
    free(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_z85_vector),     cmocka_unit_test(test_z85_errors),
        cmocka_unit_test(test_write_and_load), cmocka_unit_test(test_secret_permissions),
        cmocka_unit_test(test_allowlist),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
