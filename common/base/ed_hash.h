/*
 * ed_hash: FNV-1a 64, the project's non-cryptographic content hash (fingerprints, checksums, file
 * identities). Incremental: start from ED_FNV1A64_INIT and feed the bytes in order.
 */
#ifndef ED_HASH_H
#define ED_HASH_H

#include <stddef.h>
#include <stdint.h>

#define ED_FNV1A64_INIT 0xcbf29ce484222325ULL

/* The hash h continued over data[0..n). */
uint64_t ed_fnv1a64(uint64_t h, const void *data, size_t n);

#endif
