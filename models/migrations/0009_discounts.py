from tortoise import migrations
from tortoise.migrations import operations as ops
from models.agenda import DiscountKind
from tortoise.fields.base import OnDelete
from tortoise import fields

class Migration(migrations.Migration):
    dependencies = [('models', '0008_video_links')]

    initial = False

    operations = [
        ops.CreateModel(
            name='ServiceDiscount',
            fields=[
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
                ('updated_at', fields.DatetimeField(auto_now=True, auto_now_add=False)),
                ('id', fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('client', fields.ForeignKeyField('models.Client', source_field='client_id', db_constraint=True, to_field='id', related_name='discounts', on_delete=OnDelete.RESTRICT)),
                ('service', fields.ForeignKeyField('models.Service', source_field='service_id', db_constraint=True, to_field='id', related_name='discounts', on_delete=OnDelete.RESTRICT)),
                ('kind', fields.CharEnumField(description='PERCENT: percent\nFIXED_PRICE: fixed_price', enum_type=DiscountKind, max_length=12)),
                ('value', fields.DecimalField(max_digits=10, decimal_places=2)),
            ],
            options={'table': 'service_discount', 'app': 'models', 'unique_together': (('client', 'service'),), 'pk_attr': 'id'},
            bases=['Timestamped'],
        ),
    ]
