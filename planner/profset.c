/*
 * profset.c - one hardware profile per device type of a cluster (see
 * profset.h).
 */
#include "profset.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jsonio.h"

void profset_free(ProfileSet *s)
{
    if (!s) return;
    for (int i = 0; i < s->n; i++) profile_free(&s->prof[i]);
    free(s->group);
    memset(s, 0, sizeof *s);
}

const Profile *profset_group(const ProfileSet *s, int g)
{
    CHECK(g >= 0 && g < s->ngroups);
    return &s->prof[s->group[g]];
}

static int find_type(const ProfileSet *s, const char *device)
{
    for (int i = 0; i < s->n; i++)
        if (!strcmp(s->prof[i].device, device)) return i;
    return -1;
}

/* Adds a loaded profile (taking its memory); EINPUT on a second profile of
 * one device type or too many. */
static CalpaStatus add_prof(ProfileSet *s, Profile *p, const char *src, Err *e)
{
    if (find_type(s, p->device) >= 0 || s->n >= PROFSET_MAX) {
        CalpaStatus st = err_set(e, CALPA_EINPUT, "profile %s: %s", src,
                                 s->n >= PROFSET_MAX ? "too many profiles"
                                                     : "a second profile for its device type");
        if (find_type(s, p->device) >= 0)
            st = err_set(e, CALPA_EINPUT, "profile %s: a second profile for device type '%s'",
                         src, p->device);
        profile_free(p);
        return st;
    }
    s->prof[s->n++] = *p;
    memset(p, 0, sizeof *p);
    return CALPA_OK;
}

/* One file: a calpa-profile or a calpa-profile-set. */
static CalpaStatus load_file(ProfileSet *s, const char *path, Err *e)
{
    cJSON *j;
    CalpaStatus st = json_read_file(path, &j, e);
    if (st) return st;
    const cJSON *fmt = cJSON_GetObjectItemCaseSensitive(j, "format");
    if (cJSON_IsString(fmt) && !strcmp(fmt->valuestring, PROFILE_SET_FORMAT)) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, "version");
        const cJSON *arr = cJSON_GetObjectItemCaseSensitive(j, "profiles");
        if (!cJSON_IsNumber(v) || v->valuedouble != 1)
            st = err_set(e, CALPA_EINPUT, "%s: key 'version' must be 1", path);
        else if (!cJSON_IsArray(arr) || cJSON_GetArraySize(arr) < 1)
            st = err_set(e, CALPA_EINPUT, "%s: key 'profiles' must be a non-empty list of "
                         "profiles", path);
        for (int i = 0; !st && i < cJSON_GetArraySize(arr); i++) {
            char src[300];
            snprintf(src, sizeof src, "%s: profiles[%d]", path, i);
            Profile p;
            if ((st = profile_from_json(cJSON_GetArrayItem(arr, i), src, &p, e))) break;
            st = add_prof(s, &p, src, e);
        }
    } else {
        Profile p;
        if (!(st = profile_from_json(j, path, &p, e))) st = add_prof(s, &p, path, e);
    }
    cJSON_Delete(j);
    return st;
}

CalpaStatus profset_load(const char *spec, const Cluster *c, const char *cluster_spec,
                         ProfileSet *out, Err *e)
{
    memset(out, 0, sizeof *out);
    CHECK(c->ngroups >= 1);
    out->ngroups = c->ngroups;
    out->group = xcalloc((size_t)c->ngroups, sizeof *out->group);
    if (!spec || !*spec) spec = "analytic";
    int analytic = 0, nfiles = 0;
    CalpaStatus st = CALPA_OK;
    char *buf = xstrdup(spec), *save = NULL;
    for (char *tok = strtok_r(buf, ",", &save); tok && !st; tok = strtok_r(NULL, ",", &save)) {
        if (!strcmp(tok, "analytic")) analytic = 1;
        else {
            st = load_file(out, tok, e);
            nfiles++;
        }
    }
    free(buf);
    if (st) {
        profset_free(out);
        return st;
    }
    if (c->ngroups == 1 || (nfiles == 1 && out->n == 1 && !analytic)) {
        /* one device type, or one file: as before, it serves every group
         * whose device type it names; one type takes it whatever its name */
        int types = 1;
        for (int g = 1; g < c->ngroups; g++)
            if (strcmp(c->groups[g].device.name, c->groups[0].device.name)) types = 2;
        if (out->n == 1 && types == 1) {
            for (int g = 0; g < c->ngroups; g++) out->group[g] = 0;
            return CALPA_OK;
        }
    }
    for (int g = 0; g < c->ngroups && !st; g++) {
        const char *dev = c->groups[g].device.name;
        int i = find_type(out, dev);
        if (i < 0 && analytic && out->n < PROFSET_MAX) {
            Profile p;
            if (c->ngroups == 1) {
                profile_analytic(c, cluster_spec, &p);
            } else {
                Cluster one;
                memset(&one, 0, sizeof one);
                snprintf(one.name, sizeof one.name, "%s", c->groups[g].name);
                one.groups = (NodeGroup *)&c->groups[g];
                one.ngroups = 1;
                one.ndevices = c->groups[g].nodes * c->groups[g].devices_per_node;
                one.nnodes = c->groups[g].nodes;
                char ref[200];
                snprintf(ref, sizeof ref, "%.100s group %d (%.60s)", cluster_spec, g,
                         c->groups[g].name);
                Cluster cp;
                cluster_copy(&cp, &one);
                cp.groups[0].first_device = cp.groups[0].first_node = 0;
                profile_analytic(&cp, ref, &p);
                cluster_free(&cp);
            }
            out->prof[out->n++] = p;
            i = out->n - 1;
        }
        if (i < 0) {
            st = err_set(e, CALPA_EINPUT, "profile '%s': no profile for device type '%s' of "
                         "cluster %s (group %d); give one per device type (--profile A.json,"
                         "B.json, a calpa-profile-set file, or add ',analytic')", spec, dev,
                         c->name, g);
            break;
        }
        out->group[g] = i;
    }
    if (st) profset_free(out);
    return st;
}

CalpaStatus profset_write(const char *path, const Profile *p, int n, Err *e)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "format", PROFILE_SET_FORMAT);
    cJSON_AddNumberToObject(o, "version", 1);
    cJSON *a = cJSON_AddArrayToObject(o, "profiles");
    for (int i = 0; i < n; i++) cJSON_AddItemToArray(a, profile_to_json(&p[i]));
    CalpaStatus st = json_write_file(path, o, e);
    cJSON_Delete(o);
    return st;
}
