/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Constants of the Arrow IPC format, from the specification's FlatBuffers schemas
 * (Schema.fbs, Message.fbs, File.fbs), shared by the IPC reader (ipc_read.c) and writer
 * (ipc_write.c). Enum values are the schemas' numbering; union type ids count from 1
 * (0 = NONE); field slots are the 0-based position of each field in its table, where a
 * union field takes two slots (its _type byte, then the value). A field's vtable entry
 * sits at byte 4 + 2 * slot of the vtable.
 *
 * Only add to this file: both the reader and the writer depend on these numbers.
 */
#ifndef MYRIAD_IO_IPC_FORMAT_H
#define MYRIAD_IO_IPC_FORMAT_H

/* ---------------------------------------------------------------- framing */

#define MYR__IPC_CONTINUATION 0xFFFFFFFFu /* int32 -1 before each message's length */
#define MYR__IPC_MAGIC "ARROW1"           /* file format: first and last 6 bytes */
#define MYR__IPC_MAGIC_LEN 6
#define MYR__IPC_FILE_HEAD 8      /* magic padded to 8 bytes at the start of a file */
#define MYR__IPC_FILE_TAIL 10     /* int32 footer length + magic at the end */
#define MYR__IPC_ALIGN 8          /* messages and buffers are padded to 8 bytes */
#define MYR__IPC_NOT_COMPRESSED (-1) /* uncompressed-length prefix: body stored as is */

/* ---------------------------------------------------------------- Schema.fbs enums */

enum myr__ipc_metadata_version {   /* MetadataVersion: short */
  MYR__IPC_V1 = 0,                  /* 0.1.0 */
  MYR__IPC_V2 = 1,                  /* 0.2.0 */
  MYR__IPC_V3 = 2,                  /* 0.3.0 -> 0.7.1 */
  MYR__IPC_V4 = 3,                  /* >= 0.8.0 */
  MYR__IPC_V5 = 4,                  /* >= 1.0.0: union validity, no pre-0.15 framing */
};

enum myr__ipc_feature {             /* Feature: long (Schema.features) */
  MYR__IPC_FEATURE_UNUSED = 0,
  MYR__IPC_FEATURE_DICTIONARY_REPLACEMENT = 1,
  MYR__IPC_FEATURE_COMPRESSED_BODY = 2,
};

enum myr__ipc_endianness {          /* Endianness: short */
  MYR__IPC_LITTLE = 0,
  MYR__IPC_BIG = 1,
};

enum myr__ipc_type {                /* union Type: ubyte */
  MYR__IPC_TYPE_NONE = 0,
  MYR__IPC_TYPE_NULL = 1,
  MYR__IPC_TYPE_INT = 2,
  MYR__IPC_TYPE_FLOATING_POINT = 3,
  MYR__IPC_TYPE_BINARY = 4,
  MYR__IPC_TYPE_UTF8 = 5,
  MYR__IPC_TYPE_BOOL = 6,
  MYR__IPC_TYPE_DECIMAL = 7,
  MYR__IPC_TYPE_DATE = 8,
  MYR__IPC_TYPE_TIME = 9,
  MYR__IPC_TYPE_TIMESTAMP = 10,
  MYR__IPC_TYPE_INTERVAL = 11,
  MYR__IPC_TYPE_LIST = 12,
  MYR__IPC_TYPE_STRUCT = 13,
  MYR__IPC_TYPE_UNION = 14,
  MYR__IPC_TYPE_FIXED_SIZE_BINARY = 15,
  MYR__IPC_TYPE_FIXED_SIZE_LIST = 16,
  MYR__IPC_TYPE_MAP = 17,
  MYR__IPC_TYPE_DURATION = 18,
  MYR__IPC_TYPE_LARGE_BINARY = 19,
  MYR__IPC_TYPE_LARGE_UTF8 = 20,
  MYR__IPC_TYPE_LARGE_LIST = 21,
  MYR__IPC_TYPE_RUN_END_ENCODED = 22,
  MYR__IPC_TYPE_BINARY_VIEW = 23,
  MYR__IPC_TYPE_UTF8_VIEW = 24,
  MYR__IPC_TYPE_LIST_VIEW = 25,
  MYR__IPC_TYPE_LARGE_LIST_VIEW = 26,
};

enum myr__ipc_precision {           /* Precision: short (FloatingPoint.precision) */
  MYR__IPC_HALF = 0,
  MYR__IPC_SINGLE = 1,
  MYR__IPC_DOUBLE = 2,
};

enum myr__ipc_date_unit {           /* DateUnit: short */
  MYR__IPC_DATE_DAY = 0,
  MYR__IPC_DATE_MILLISECOND = 1,
};

enum myr__ipc_time_unit {           /* TimeUnit: short */
  MYR__IPC_SECOND = 0,
  MYR__IPC_MILLISECOND = 1,
  MYR__IPC_MICROSECOND = 2,
  MYR__IPC_NANOSECOND = 3,
};

enum myr__ipc_interval_unit {       /* IntervalUnit: short */
  MYR__IPC_YEAR_MONTH = 0,
  MYR__IPC_DAY_TIME = 1,
  MYR__IPC_MONTH_DAY_NANO = 2,
};

enum myr__ipc_union_mode {          /* UnionMode: short */
  MYR__IPC_UNION_SPARSE = 0,
  MYR__IPC_UNION_DENSE = 1,
};

enum myr__ipc_dictionary_kind {     /* DictionaryKind: short */
  MYR__IPC_DENSE_ARRAY = 0,
};

/* ---------------------------------------------------------------- Message.fbs enums */

enum myr__ipc_header {              /* union MessageHeader: ubyte */
  MYR__IPC_HEADER_NONE = 0,
  MYR__IPC_HEADER_SCHEMA = 1,
  MYR__IPC_HEADER_DICTIONARY_BATCH = 2,
  MYR__IPC_HEADER_RECORD_BATCH = 3,
  MYR__IPC_HEADER_TENSOR = 4,
  MYR__IPC_HEADER_SPARSE_TENSOR = 5,
};

enum myr__ipc_compression_type {    /* CompressionType: byte */
  MYR__IPC_CODEC_LZ4_FRAME = 0,
  MYR__IPC_CODEC_ZSTD = 1,
};

enum myr__ipc_compression_method {  /* BodyCompressionMethod: byte */
  MYR__IPC_METHOD_BUFFER = 0,
};

/* ---------------------------------------------------------------- table field slots */

/* Message (Message.fbs) */
#define MYR__IPC_MESSAGE_VERSION 0          /* MetadataVersion (short) */
#define MYR__IPC_MESSAGE_HEADER_TYPE 1      /* MessageHeader type (ubyte) */
#define MYR__IPC_MESSAGE_HEADER 2           /* MessageHeader value (table offset) */
#define MYR__IPC_MESSAGE_BODY_LENGTH 3      /* long */
#define MYR__IPC_MESSAGE_CUSTOM_METADATA 4  /* [KeyValue] */

/* RecordBatch (Message.fbs) */
#define MYR__IPC_RECORD_BATCH_LENGTH 0       /* long: rows */
#define MYR__IPC_RECORD_BATCH_NODES 1        /* [FieldNode] (struct vector) */
#define MYR__IPC_RECORD_BATCH_BUFFERS 2      /* [Buffer] (struct vector) */
#define MYR__IPC_RECORD_BATCH_COMPRESSION 3  /* BodyCompression */
#define MYR__IPC_RECORD_BATCH_VARIADIC 4     /* [long] variadicBufferCounts */

/* struct FieldNode { long length; long null_count; } */
#define MYR__IPC_FIELD_NODE_SIZE 16
/* struct Buffer { long offset; long length; } (offset relative to the body start) */
#define MYR__IPC_BUFFER_SIZE 16

/* DictionaryBatch (Message.fbs) */
#define MYR__IPC_DICTIONARY_BATCH_ID 0        /* long */
#define MYR__IPC_DICTIONARY_BATCH_DATA 1      /* RecordBatch */
#define MYR__IPC_DICTIONARY_BATCH_IS_DELTA 2  /* bool, default false */

/* BodyCompression (Message.fbs) */
#define MYR__IPC_BODY_COMPRESSION_CODEC 0   /* CompressionType, default LZ4_FRAME */
#define MYR__IPC_BODY_COMPRESSION_METHOD 1  /* BodyCompressionMethod, default BUFFER */

/* Schema (Schema.fbs) */
#define MYR__IPC_SCHEMA_ENDIANNESS 0       /* Endianness, default Little */
#define MYR__IPC_SCHEMA_FIELDS 1           /* [Field] */
#define MYR__IPC_SCHEMA_CUSTOM_METADATA 2  /* [KeyValue] */
#define MYR__IPC_SCHEMA_FEATURES 3         /* [Feature] (long) */

/* Field (Schema.fbs) */
#define MYR__IPC_FIELD_NAME 0             /* string */
#define MYR__IPC_FIELD_NULLABLE 1         /* bool */
#define MYR__IPC_FIELD_TYPE_TYPE 2        /* Type union type (ubyte) */
#define MYR__IPC_FIELD_TYPE 3             /* Type union value (table offset) */
#define MYR__IPC_FIELD_DICTIONARY 4       /* DictionaryEncoding */
#define MYR__IPC_FIELD_CHILDREN 5         /* [Field] */
#define MYR__IPC_FIELD_CUSTOM_METADATA 6  /* [KeyValue] */

/* KeyValue (Schema.fbs) */
#define MYR__IPC_KEY_VALUE_KEY 0    /* string */
#define MYR__IPC_KEY_VALUE_VALUE 1  /* string */

/* DictionaryEncoding (Schema.fbs) */
#define MYR__IPC_DICTIONARY_ID 0          /* long */
#define MYR__IPC_DICTIONARY_INDEX_TYPE 1  /* Int; absent means signed 32-bit */
#define MYR__IPC_DICTIONARY_IS_ORDERED 2  /* bool */
#define MYR__IPC_DICTIONARY_KIND 3        /* DictionaryKind (short) */

/* Int (Schema.fbs) */
#define MYR__IPC_INT_BIT_WIDTH 0  /* int: 8, 16, 32, 64 */
#define MYR__IPC_INT_IS_SIGNED 1  /* bool */

/* FloatingPoint (Schema.fbs) */
#define MYR__IPC_FLOATING_POINT_PRECISION 0  /* Precision (short) */

/* Decimal (Schema.fbs) */
#define MYR__IPC_DECIMAL_PRECISION 0  /* int */
#define MYR__IPC_DECIMAL_SCALE 1      /* int */
#define MYR__IPC_DECIMAL_BIT_WIDTH 2  /* int, default 128 */

/* Date (Schema.fbs) */
#define MYR__IPC_DATE_UNIT 0  /* DateUnit (short), default MILLISECOND */

/* Time (Schema.fbs) */
#define MYR__IPC_TIME_UNIT 0       /* TimeUnit (short), default MILLISECOND */
#define MYR__IPC_TIME_BIT_WIDTH 1  /* int, default 32 */

/* Timestamp (Schema.fbs) */
#define MYR__IPC_TIMESTAMP_UNIT 0      /* TimeUnit (short), default SECOND */
#define MYR__IPC_TIMESTAMP_TIMEZONE 1  /* string; absent = no time zone */

/* Interval (Schema.fbs) */
#define MYR__IPC_INTERVAL_UNIT 0  /* IntervalUnit (short) */

/* Duration (Schema.fbs) */
#define MYR__IPC_DURATION_UNIT 0  /* TimeUnit (short), default MILLISECOND */

/* FixedSizeBinary, FixedSizeList, Map, Union (Schema.fbs) */
#define MYR__IPC_FIXED_SIZE_BINARY_BYTE_WIDTH 0  /* int */
#define MYR__IPC_FIXED_SIZE_LIST_LIST_SIZE 0     /* int */
#define MYR__IPC_MAP_KEYS_SORTED 0               /* bool */
#define MYR__IPC_UNION_MODE 0                    /* UnionMode (short) */
#define MYR__IPC_UNION_TYPE_IDS 1                /* [int] */

/* Footer (File.fbs) */
#define MYR__IPC_FOOTER_VERSION 0          /* MetadataVersion (short) */
#define MYR__IPC_FOOTER_SCHEMA 1           /* Schema */
#define MYR__IPC_FOOTER_DICTIONARIES 2     /* [Block] (struct vector) */
#define MYR__IPC_FOOTER_RECORD_BATCHES 3   /* [Block] (struct vector) */
#define MYR__IPC_FOOTER_CUSTOM_METADATA 4  /* [KeyValue] */

/* struct Block { long offset; int metaDataLength; (4 bytes padding) long bodyLength; }
   offset: of the message (its continuation marker / length prefix) from the file start;
   metaDataLength: prefix + flatbuffer + padding; the body follows at offset + that. */
#define MYR__IPC_BLOCK_SIZE 24
#define MYR__IPC_BLOCK_OFFSET 0
#define MYR__IPC_BLOCK_META_DATA_LENGTH 8
#define MYR__IPC_BLOCK_BODY_LENGTH 16

#endif /* MYRIAD_IO_IPC_FORMAT_H */
