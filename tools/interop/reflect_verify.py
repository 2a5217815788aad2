"""A partner's client in another language, built from gRPC reflection alone.

No .proto file and no generated code: the official Python gRPC runtime asks the
server's reflection service for credmesh.verify.v1.VerifyService, builds the
request and answer types from the descriptors it is sent, and calls Verify with
the QR text given. Prints the answer as JSON (proto field names); exits non-zero
when reflection, the descriptors or the call fail.

Usage: reflect_verify.py HOST:PORT TOKEN QR_TEXT
"""

import json
import sys

import grpc
from google.protobuf import descriptor_pool, json_format, message_factory
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import (
    ProtoReflectionDescriptorDatabase,
)

SERVICE = "credmesh.verify.v1.VerifyService"


def main() -> int:
    addr, token, qr = sys.argv[1:4]
    channel = grpc.insecure_channel(addr)
    database = ProtoReflectionDescriptorDatabase(channel)
    services = set(database.get_services())
    if SERVICE not in services:
        print(f"reflection does not list {SERVICE}: {sorted(services)}", file=sys.stderr)
        return 1
    pool = descriptor_pool.DescriptorPool(database)
    service = pool.FindServiceByName(SERVICE)
    method = service.methods_by_name["Verify"]
    request_type = message_factory.GetMessageClass(method.input_type)
    response_type = message_factory.GetMessageClass(method.output_type)

    request = request_type()
    json_format.ParseDict({"credential": {"text": qr}}, request)
    call = channel.unary_unary(
        f"/{SERVICE}/Verify",
        request_serializer=lambda m: m.SerializeToString(),
        response_deserializer=response_type.FromString,
    )
    answer = call(request, metadata=[("authorization", f"Bearer {token}")], timeout=10)
    print(
        json.dumps(
            {
                "methods": sorted(m.name for m in service.methods),
                "answer": json_format.MessageToDict(
                    answer, preserving_proto_field_name=True
                ),
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
