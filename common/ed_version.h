/* ed_version: the edistill release, recorded in model files' provenance. */
#ifndef ED_VERSION_H
#define ED_VERSION_H

#define EDISTILL_VERSION "0.1.0"

#endif
