/* ed_version: the release string (see ed_version.h). */
#include "ed_version.h"

#ifndef EDISTILL_VERSION
#error "EDISTILL_VERSION is set by common/CMakeLists.txt from project(edistill VERSION ...)"
#endif

const char *ed_version(void)
{
    return EDISTILL_VERSION;
}
