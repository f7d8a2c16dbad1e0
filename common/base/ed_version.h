/*
 * ed_version: the edistill release, recorded in model files' provenance. The number has one home:
 * `project(edistill VERSION ...)` in the top-level CMakeLists.txt, passed to ed_version.c only.
 */
#ifndef ED_VERSION_H
#define ED_VERSION_H

/* "0.1.0": the release this build was made from. */
const char *ed_version(void);

#endif
