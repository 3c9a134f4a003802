/*
 * profset.h - the hardware profiles of a cluster: one Profile per device
 * type, so that a heterogeneous cluster (node groups of different devices)
 * has each group's compute and collectives answered by its own device's
 * tables.
 *
 * How a user names them (`--profile P`, and the plan file's "profile"):
 *   (absent) or "analytic"   the analytic profile of every device type, each
 *                            built on the first group holding that type (a
 *                            one-group cluster: exactly `profile_analytic` of
 *                            the cluster, so homogeneous results are unchanged)
 *   FILE.json                a calpa-profile (one device type); on a one-type
 *                            cluster it is used whatever its device name (as
 *                            before); on a mixed cluster it serves the groups
 *                            of its device type
 *   SET.json                 a "calpa-profile-set" file: {"format":
 *                            "calpa-profile-set", "version": 1, "profiles":
 *                            [profile objects...]}, one per device type
 *   A.json,B.json[,analytic] a comma-separated list of the above; "analytic"
 *                            fills every device type no file covers
 * On a mixed cluster every group's device type must be covered (by name),
 * else EINPUT naming the type.  Key design choice: groups map to profiles by
 * the device type's name (DeviceType.name == Profile.device), the name a
 * profile already carries.
 */
#ifndef CALPA_PROFSET_H
#define CALPA_PROFSET_H

#include "cluster.h"
#include "err.h"
#include "profile.h"

#define PROFILE_SET_FORMAT "calpa-profile-set"
#define PROFSET_MAX 16 /* profiles (device types) in a set */

typedef struct {
    Profile prof[PROFSET_MAX]; /* owned */
    int n;
    int *group;                /* per cluster group: index into prof (owned) */
    int ngroups;
} ProfileSet;

/* Loads the profiles named by spec (NULL = "analytic") for cluster c;
 * cluster_spec is how the user named c (the analytic profiles' notes).
 * On success *out owns memory (profset_free).  Errors (EINPUT): a profile
 * file's own errors, a malformed set file, a device type the profiles do
 * not cover, two profiles for one device type. */
CalpaStatus profset_load(const char *spec, const Cluster *c, const char *cluster_spec,
                         ProfileSet *out, Err *e);

/* The profile of group g of the cluster the set was loaded for. */
const Profile *profset_group(const ProfileSet *s, int g);

/* Frees what s owns and zeroes it; NULL and zeroed sets are fine. */
void profset_free(ProfileSet *s);

/* Writes the profiles p[0..n) as one calpa-profile-set file (EFAIL on I/O). */
CalpaStatus profset_write(const char *path, const Profile *p, int n, Err *e);

#endif
