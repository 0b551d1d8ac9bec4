/* records.h - every journal record type: one struct per kind, built into JSON and parsed back here only. */
#pragma once

/*
 * The journal (journal.h) stores JSON objects; this module is the one place
 * that knows their shape. Each kind has a struct; record_encode() builds the
 * JSON object of one, record_decode() parses one back and names the field
 * at fault when it cannot. The format on disk (state.h lists it) is kept
 * as earlier versions wrote it, so their journals replay:
 *
 *   seq       {"kind":"seq","next":N}
 *   request   {"kind":"request","id":R,"type":T,"uid":U,"pid":P,"time":T, [client, job_id, reason,
 *              features, resume_file_error: strings], [resume_file: object], [nodes: hostlist],
 *              "operations":N [, resize: "group":G, "min":M, "wait":B]}
 *   op        {"kind":"op","id":O,"node":N,"group":G,"op":K,"state":S,["request":R],"time":T[,"changed":T]}
 *   op_state  {"kind":"op_state","id":O,"node":N,"state":S,"time":T[,"note":...][,"by_request":R]}
 *   node      {"kind":"node","node":N,["op":O],"time":T[,"step"|"instance_id"|"address"|"note": string or null]}
 *   lookup    {"kind":"lookup","what":"flavor"|"image"|"network","name":N,"id":I or null,
 *              ["scope":S],"time":T}  (null: forgotten)
 *   capacity  {"kind":"capacity","group":G,"since":S,"until":U,"failovers":N[,"reason":R],"time":T}
 *             or its end: {"kind":"capacity","group":G,"ended":"expired"|"enabled","time":T}
 *   downmark  {"kind":"downmark","node":N,"reason":R or null[,"group":G],"time":T}  (null: done)
 *   journal   {"kind":"journal","event":"compacted","previous_bytes":B,"previous_records":N}
 *             (the journal's own marker)
 *
 * The journal's framing keys ("seq", "ts", "more") are not part of a record:
 * record_decode ignores them, as it ignores any key it does not know (a
 * newer elasticd may add some). Strings in a decoded record are borrowed
 * from the JSON object: valid while it lives.
 */

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "journal/state.h"

enum record_kind {
        RECORD_SEQ,
        RECORD_REQUEST,
        RECORD_OP,
        RECORD_OP_STATE,
        RECORD_NODE,
        RECORD_JOURNAL,
        RECORD_LOOKUP,
        RECORD_CAPACITY,
        RECORD_DOWNMARK,
        _RECORD_KIND_MAX,
};

/* "seq", "request", "op", "op_state", "node", "journal", "lookup", "capacity", "downmark". */
const char *record_kind_to_string(enum record_kind k);
int record_kind_from_string(const char *s);

/* The request types the journal holds: the hooks' and resize. */
enum record_request_type {
        RECORD_REQUEST_RESUME,
        RECORD_REQUEST_SUSPEND,
        RECORD_REQUEST_RESUME_FAIL,
        RECORD_REQUEST_REBOOT,
        RECORD_REQUEST_RESIZE,
        _RECORD_REQUEST_TYPE_MAX,
};

/* "resume", "suspend", "resume_fail", "reboot" (as state_op_kind), "resize". */
const char *record_request_type_to_string(enum record_request_type t);
int record_request_type_from_string(const char *s);

/* A string a record sets, clears (JSON null) or leaves as it was (absent). */
struct record_text {
        bool present;
        const char *value;    /* NULL with present: cleared */
};
#define RECORD_TEXT(s) ((struct record_text) { .present = true, .value = (s) })
#define RECORD_TEXT_IF(s) ((struct record_text) { .present = (s) != NULL, .value = (s) })

struct record_seq {
        uint64_t next;        /* >= 1: the id counter's floor */
};

/* An accepted request. */
struct record_request {
        const char *id;
        enum record_request_type type;
        int64_t uid, pid;
        int64_t time;
        const char *client, *job_id, *reason, *features, *resume_file_error;  /* optional */
        json_t *resume_file;  /* optional JSON object (the hook's SLURM_RESUME_FILE) */
        const char *nodes;    /* hooks: the nodes named, as a hostlist */
        int64_t operations;   /* operations it created */
        /* resize */
        const char *group;
        unsigned min;
        bool wait;
};

/* A node operation, created (or, from compaction, as it stands). */
struct record_op {
        const char *id, *node, *group;
        enum state_op_kind op;
        enum state_op_state state;
        const char *request;  /* optional */
        int64_t time;         /* created */
        int64_t changed;      /* last state change; 0: time */
};

/* A node operation changed state. */
struct record_op_state {
        const char *id, *node;
        enum state_op_state state;
        int64_t time;
        struct record_text note;
        const char *by_request;  /* optional: the request that superseded it */
};

/* The lifecycle's progress on a node. */
struct record_node {
        const char *node;
        const char *op;       /* optional: the operation the step and note belong to */
        int64_t time;
        struct record_text step, instance_id, address, note;
};

/* A name the cloud resolved to an id (the cloud client's cache, journalled
 * so that a restart within its TTL does not ask again), or forgot. */
struct record_lookup {
        enum state_lookup_what what;
        const char *name;
        const char *id;       /* NULL: forgotten (a 4xx named it) */
        const char *scope;    /* optional: which cloud it is an id of */
        int64_t time;         /* unix seconds */
};

/* A group's capacity cooldown (ops/capacity.h): started or changed (a later
 * end, a newer reason, one more failover), or ended. */
enum record_capacity_end {
        RECORD_CAPACITY_SHORT,      /* not ended: the record says since, until, ... */
        RECORD_CAPACITY_EXPIRED,    /* its until passed */
        RECORD_CAPACITY_ENABLED,    /* `elasticctl group enable` */
        _RECORD_CAPACITY_END_MAX,
};

/* "" (never written), "expired", "enabled". */
const char *record_capacity_end_to_string(enum record_capacity_end e);

struct record_capacity {
        const char *group;
        enum record_capacity_end ended;
        int64_t since, until;     /* unix seconds; not ended only */
        int64_t failovers;
        const char *reason;       /* optional: the cloud's words */
        int64_t time;
};

/* A failed node elasticd sets DOWN once Slurm powered it down (and, held
 * DOWN for its group's cooldown, resumes at its end), or the end of that. */
struct record_downmark {
        const char *node;
        const char *reason;       /* NULL: done (DOWN taken, resumed, given up) */
        const char *group;        /* optional: DOWN for this group's capacity cooldown */
        int64_t time;
};

/* The journal's own compaction marker. */
struct record_journal {
        const char *event;    /* "compacted" */
        uint64_t previous_bytes, previous_records;
};

struct record {
        enum record_kind kind;
        union {
                struct record_seq seq;
                struct record_request request;
                struct record_op op;
                struct record_op_state op_state;
                struct record_node node;
                struct record_journal journal;
                struct record_lookup lookup;
                struct record_capacity capacity;
                struct record_downmark downmark;
        };
};

/* The JSON object of R (a new reference in *ret). -EINVAL with a message in
 * *ret_error (malloc'd) when R lacks a required field or holds a value
 * record_decode would refuse; -ENOMEM. */
int record_encode(const struct record *r, json_t **ret, char **ret_error);

/* Parse JSON into *ret (strings borrowed from JSON). 0 on success; 1 for an
 * object of a kind this version does not know (*ret untouched: skip it);
 * -EBADMSG with *ret_error naming the kind, the id when there is one, and
 * the field at fault. */
int record_decode(json_t *json, struct record *ret, char **ret_error);
